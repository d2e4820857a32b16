/**
 * What the model predicts after the selected token: the top-k next tokens with probabilities,
 * and where the token that actually follows ranks. Token text comes from the vocabulary the host
 * sent with the model; without it (a dump opened alone) ids are shown.
 */
import { Unavailable } from '../analysis/layerAnalysis';
import { topAt } from '../../src/engine/predictions';
import { formatPercent, visibleToken } from '../render/format';
import { drawTable } from '../render/textCanvas';
import type { PanelData } from '../panelData';
import { tokenLabel } from './common';
import type { ExportSlice, View, ViewContext, ViewDescription, ViewSpec, ViewUpdate } from './view';


function vocabText(data: PanelData, id: number): string {
  const v = data.model?.vocab?.[id];
  return v === undefined ? `#${id}` : `‘${visibleToken(v)}’`;
}

class NextTokenView implements View {
  readonly element: HTMLElement;
  private readonly heading: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly actual: HTMLElement;
  private shown: { t: number; ids: number[]; probs: number[] } | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'next-token';
    this.heading = document.createElement('h3');
    this.heading.className = 'view-title';
    this.list = document.createElement('ol');
    this.list.className = 'predictions';
    this.actual = document.createElement('p');
    this.actual.className = 'actual-next';
    this.element.append(this.heading, this.list, this.actual);
  }

  update({ data, state }: ViewUpdate): void {
    const predictions = data.inspection.predictions;
    if (!predictions) throw new Unavailable('This data has no logits, so there are no next-token predictions (dump them as "logits").');
    const t = state.token;
    if (t === null) throw new Unavailable('Select a token (click the token strip or press →) to see what the model predicts after it.');
    const top = topAt(predictions, t);
    this.heading.textContent = `After ${tokenLabel(data, t)}: top ${top.length} next tokens`;
    this.list.replaceChildren(...top.map((p) => {
      const li = document.createElement('li');
      const bar = document.createElement('span');
      bar.className = 'prob-bar';
      bar.style.width = `${Math.max(1, p.prob * 100)}%`;
      const label = document.createElement('span');
      label.className = 'prob-label';
      label.textContent = `${vocabText(data, p.id)} ${formatPercent(p.prob)}`;
      li.append(bar, label);
      li.setAttribute('aria-label', `${vocabText(data, p.id)}: probability ${formatPercent(p.prob)}`);
      li.dataset.id = String(p.id);
      li.dataset.prob = String(p.prob);
      return li;
    }));
    const ids = data.inspection.ids;
    if (ids && t + 1 < ids.length) {
      const prob = predictions.nextProb[t], rank = predictions.nextRank[t];
      this.actual.textContent = `Actual next token ${vocabText(data, ids[t + 1])}: ${formatPercent(prob)}, rank ${rank + 1}`;
    } else this.actual.textContent = t + 1 >= (ids?.length ?? 0) ? 'This is the last token of the sample.' : '';
    this.shown = { t, ids: top.map((p) => p.id), probs: top.map((p) => p.prob) };
  }

  snapshot(): HTMLCanvasElement | null {
    const s = this.shown, data = this.ctx.data();
    if (!s || !data) return null;
    const rows = [[{ text: this.heading.textContent ?? '' }], ...s.ids.map((id, i) => [{ text: vocabText(data, id) }, { text: formatPercent(s.probs[i]), bar: s.probs[i] }]), [{ text: this.actual.textContent ?? '' }]];
    return drawTable(rows, getComputedStyle(this.element));
  }

  describe(): ViewDescription {
    const p = this.shown?.probs ?? [];
    return { drawn: p.length > 0, distinctColors: 0, min: p.length ? Math.min(...p) : NaN, max: p.length ? Math.max(...p) : NaN };
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

export const nextTokenView: ViewSpec = {
  id: 'next',
  title: 'Next token',
  area: 'lowerSide',
  empty: 'No inspection yet: run “Mamba Scope: Inspect Selection”, then select a token to see the model’s predictions after it.',
  create: (ctx) => new NextTokenView(ctx),
};
