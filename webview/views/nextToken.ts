/**
 * What the model predicts after the selected token: the top-k next tokens with probabilities,
 * and where the token that actually follows ranks. Token text comes from the vocabulary the host
 * sent with the model; without it (a dump opened alone) ids are shown. After an intervention the
 * intervened run's top-k stands beside the clean one, with the KL between the two distributions
 * and the change of the actual next token's (and the chosen target's) probability.
 */
import { Unavailable } from '../analysis/layerAnalysis';
import { topAt, type Prediction, type Predictions } from '../../src/engine/predictions';
import { formatPercent, formatValue } from '../render/format';
import { drawTable } from '../render/textCanvas';
import type { PanelData } from '../panelData';
import { tokenLabel, vocabText } from './common';
import type { ExportSlice, View, ViewContext, ViewDescription, ViewSpec, ViewUpdate } from './view';


function predictionList(data: PanelData, top: readonly Prediction[], className: string): HTMLOListElement {
  const list = document.createElement('ol');
  list.className = className;
  list.replaceChildren(...top.map((p) => {
    const li = document.createElement('li');
    const bar = document.createElement('span');
    bar.className = 'prob-bar';
    bar.style.width = `${Math.max(1, p.prob * 100)}%`;
    const label = document.createElement('span');
    label.className = 'prob-label';
    label.textContent = `${vocabText(data, p.id)} ${formatPercent(p.prob)}`;
    li.append(bar, label);
    li.setAttribute('aria-label', `${vocabText(data, p.id)}: probability ${formatPercent(p.prob)}`);
    li.title = 'Click: the target whose probability the next intervention reports';
    li.dataset.id = String(p.id);
    li.dataset.prob = String(p.prob);
    return li;
  }));
  return list;
}

class NextTokenView implements View {
  readonly element: HTMLElement;
  private readonly heading: HTMLElement;
  private readonly columns: HTMLElement;
  private readonly actual: HTMLElement;
  private readonly effect: HTMLElement;
  private shown: { t: number; ids: number[]; probs: number[]; intervened: { spec: string; ids: number[]; probs: number[] } | null } | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'next-token';
    this.heading = document.createElement('h3');
    this.heading.className = 'view-title';
    this.columns = document.createElement('div');
    this.columns.className = 'prediction-columns';
    this.actual = document.createElement('p');
    this.actual.className = 'actual-next';
    this.effect = document.createElement('p');
    this.effect.className = 'next-effect';
    this.element.append(this.heading, this.columns, this.actual, this.effect);
    // A click on a prediction makes it the target of the next intervention (its probability change is reported).
    this.columns.addEventListener('click', (e) => {
      const id = (e.target as HTMLElement).closest<HTMLElement>('li[data-id]')?.dataset.id;
      if (id !== undefined) ctx.interventions.pickTarget(Number(id));
    });
  }

  update({ data, state }: ViewUpdate): void {
    const predictions = data.inspection.predictions;
    if (!predictions) throw new Unavailable('This data has no logits, so there are no next-token predictions (dump them as "logits").');
    const t = state.token;
    if (t === null) throw new Unavailable('Select a token (click the token strip or press →) to see what the model predicts after it.');
    const top = topAt(predictions, t);
    this.heading.textContent = `After ${tokenLabel(data, t)}: top ${top.length} next tokens`;
    const o = this.ctx.interventions.outcome;
    const outcome = o && o.runId === data.inspection.id ? o : null;
    const clean = predictionList(data, top, 'predictions');
    if (!outcome) this.columns.replaceChildren(clean);
    else {
      const intervenedTop = topAt(outcome.predictions, t);
      this.columns.replaceChildren(column('clean', clean), column(`intervened: ${outcome.specs.join('; ')}`, predictionList(data, intervenedTop, 'predictions intervened')));
    }
    const ids = data.inspection.ids;
    const last = !ids || t + 1 >= ids.length;
    this.actual.textContent = last ? (t + 1 >= (ids?.length ?? 0) ? 'This is the last token of the sample.' : '') : `Actual next token ${vocabText(data, ids[t + 1])}: ${probability(predictions, t)}${outcome ? ` → ${probability(outcome.predictions, t)} intervened` : ''}`;
    this.effect.hidden = !outcome;
    if (outcome) {
      const { kl, dLoss, target } = outcome.effect;
      const parts = [`KL(clean ‖ intervened) ${formatValue(kl[t])} nats`, ...(t < dLoss.length ? [`Δloss ${formatValue(dLoss[t])}`] : [])];
      if (target) parts.push(`target ${vocabText(data, target.id)} ${formatPercent(target.clean[t])} → ${formatPercent(target.intervened[t])} (Δlogit ${formatValue(target.dLogit[t])})`);
      this.effect.textContent = parts.join(' · ');
    }
    const intervened = outcome ? topAt(outcome.predictions, t) : null;
    this.shown = { t, ids: top.map((p) => p.id), probs: top.map((p) => p.prob), intervened: outcome && intervened ? { spec: outcome.specs.join('; '), ids: intervened.map((p) => p.id), probs: intervened.map((p) => p.prob) } : null };
  }

  snapshot(): HTMLCanvasElement | null {
    const s = this.shown, data = this.ctx.data();
    if (!s || !data) return null;
    const list = (ids: number[], probs: number[]) => ids.map((id, i) => [{ text: vocabText(data, id) }, { text: formatPercent(probs[i]), bar: probs[i] }]);
    const intervened = s.intervened ? [[{ text: `intervened: ${s.intervened.spec}` }], ...list(s.intervened.ids, s.intervened.probs), [{ text: this.effect.textContent ?? '' }]] : [];
    const rows = [[{ text: this.heading.textContent ?? '' }], ...list(s.ids, s.probs), ...intervened, [{ text: this.actual.textContent ?? '' }]];
    return drawTable(rows, getComputedStyle(this.element));
  }

  /** The probabilities listed; after an intervention the intervened ones, and `shows` names it. */
  describe(): ViewDescription {
    const i = this.shown?.intervened;
    const p = i?.probs ?? this.shown?.probs ?? [];
    return { drawn: p.length > 0, distinctColors: 0, min: p.length ? Math.min(...p) : NaN, max: p.length ? Math.max(...p) : NaN, ...(i ? { shows: `intervened: ${i.spec}` } : {}) };
  }

  slice(): ExportSlice | null {
    const s = this.shown, data = this.ctx.data();
    if (!s || !data) return null;
    return {
      name: `next-token-after-${s.t}`,
      tensor: { shape: [s.ids.length, 2], data: Float32Array.from(s.ids.flatMap((id, i) => [id, s.probs[i]])) },
      rowLabels: s.ids.map((id) => vocabText(data, id)),
      columnLabels: ['token id', 'probability'],
    };
  }
}

function column(title: string, list: HTMLElement): HTMLElement {
  const c = document.createElement('div');
  c.className = 'prediction-column';
  const h = document.createElement('h4');
  h.textContent = title;
  c.append(h, list);
  return c;
}

/** The actual next token's probability and rank after position t. */
function probability(p: Predictions, t: number): string {
  return `${formatPercent(p.nextProb[t])}, rank ${p.nextRank[t] + 1}`;
}

export const nextTokenView: ViewSpec = {
  id: 'next',
  title: 'Next token',
  area: 'lowerSide',
  empty: 'No inspection yet: run “Mamba Scope: Inspect Selection”, then select a token to see the model’s predictions after it.',
  create: (ctx) => new NextTokenView(ctx),
};
