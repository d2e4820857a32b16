/**
 * The sample's tokens, each tinted by the chosen metric's per-token mean at the selected layer.
 * Hover shows the token's id, position and values; a click selects it for every view. Annotated
 * tokens are underlined. One span per token (text must stay readable and selectable); the
 * tokens × channels data is never drawn as DOM.
 *
 * The strip is laid out like the source: a row ends wherever a token holds a newline (shown ⏎),
 * and a line wider than the strip wraps between tokens, so every row in view shows its tokens
 * without scrolling sideways.
 *
 * After an intervention the strip can colour by its effect instead: the KL of each position's
 * next-token distribution from the clean run's, or the change in next-token loss, with the
 * intervened tokens boxed and the first position that changed marked. A right-click on a token
 * offers the interventions at it (interventionMenu.ts).
 */
import { TOKEN_METRICS, type TokenMetric } from '../../src/protocol';
import { METRIC_SYMBOL, Unavailable } from '../analysis/layerAnalysis';
import { rowMeans } from '../analysis/metrics';
import { colormapRgb, isDiverging } from '../render/colormaps';
import { formatValue, visibleToken } from '../render/format';
import { colorScale, Legend } from '../render/legend';
import { drawFlow, type TextCell } from '../render/textCanvas';
import { placeTooltip } from '../render/tooltip';
import type { PanelData } from '../panelData';
import { STRIP_VALUES, type StripValues, type ViewState } from '../state';
import type { Colormap } from '../../src/protocol';
import type { InterventionOutcome } from '../interventions/compute';
import { InterventionMenu } from './interventionMenu';
import type { View, ViewContext, ViewDescription, ViewSpec, ViewUpdate } from './view';

const STRIP_VALUE_LABELS: Record<StripValues, string> = { metric: 'the metric', kl: 'KL from the intervention', dloss: 'Δloss from the intervention' };

/** What the strip colours by: the values, their legend name, the colormap. */
interface Colouring {
  readonly values: Float32Array | Float64Array | null;
  readonly name: string;
  readonly colormap: Colormap;
  readonly describe: (v: number) => string;
}

class TokenStripView implements View {
  readonly element: HTMLElement;
  private readonly strip: HTMLElement;
  private readonly tooltip: HTMLElement;
  private readonly legend = new Legend('');
  private spans: HTMLElement[] = [];
  private builtFor: string | null = null;
  private colouredFor: string | null = null;
  private values: Float32Array | Float64Array | null = null;
  private selected: number | null = null;
  private range = { min: NaN, max: NaN };
  private perTokenCache = new Map<string, Float32Array>();
  private colouredOutcome: InterventionOutcome | null = null;
  private readonly valuesSelect: HTMLSelectElement;
  private readonly menu: InterventionMenu;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'token-strip';
    this.strip = document.createElement('div');
    this.strip.className = 'tokens';
    this.strip.tabIndex = 0;
    this.strip.setAttribute('role', 'listbox');
    this.tooltip = document.createElement('div');
    this.tooltip.className = 'token-tooltip';
    this.tooltip.setAttribute('role', 'tooltip');
    this.tooltip.hidden = true;
    const footer = document.createElement('div');
    footer.className = 'token-strip-footer';
    this.valuesSelect = document.createElement('select');
    this.valuesSelect.className = 'strip-values';
    this.valuesSelect.setAttribute('aria-label', 'Colour the tokens by');
    for (const v of STRIP_VALUES) this.valuesSelect.append(new Option(STRIP_VALUE_LABELS[v], v));
    this.valuesSelect.addEventListener('change', () => ctx.store.set({ stripValues: this.valuesSelect.value as StripValues }));
    footer.append(this.legend.element, this.valuesSelect);
    this.menu = new InterventionMenu(ctx);
    this.element.append(this.strip, footer, this.tooltip, this.menu.element);
    // The menu key or Shift+F10 on the strip opens it at the selected token.
    this.strip.addEventListener('contextmenu', (e) => {
      const i = this.indexOf(e.target) ?? (e.target === this.strip ? ctx.store.get().token : null);
      if (i === null) return;
      e.preventDefault();
      ctx.store.set({ token: i });
      const at = e.target === this.strip ? this.spans[i].getBoundingClientRect() : null;
      this.menu.open(i, at ? at.left : e.clientX, at ? at.bottom : e.clientY);
    });
    this.strip.addEventListener('click', (e) => {
      const i = this.indexOf(e.target);
      if (i !== null) ctx.store.set({ token: i });
    });
    this.strip.addEventListener('pointerover', (e) => {
      const i = this.indexOf(e.target);
      if (i !== null) this.showTooltip(i, e.target as HTMLElement, e);
    });
    this.strip.addEventListener('pointerleave', () => (this.tooltip.hidden = true));
  }

  async update({ data, state, changed, stale }: ViewUpdate): Promise<void> {
    const ins = data.inspection;
    if (!ins.tokens && !ins.ids) throw new Unavailable('This data has no input_ids or tokens, so there is no token strip.');
    if (this.builtFor !== ins.id) this.build(data);
    const outcome = this.outcomeOf(data);
    const by: StripValues = outcome ? state.stripValues : 'metric';
    const key = `${ins.id}:${state.layer}:${state.metric}:${state.colormap}:${by}`;
    if (this.colouredFor !== key || this.colouredOutcome !== outcome || changed === null) {
      const colouring = by === 'metric' ? await this.metricColouring(data, state) : effectColouring(outcome!, by, state.colormap);
      if (stale()) return;
      this.values = colouring.values;
      this.colour(state, colouring);
      this.markIntervention(outcome);
      this.colouredFor = key;
      this.colouredOutcome = outcome;
    }
    this.valuesSelect.hidden = !outcome;
    this.valuesSelect.value = by;
    this.select(state.token);
    this.underlineAnnotations();
  }

  /** The last intervention's effect, when it belongs to the inspection shown. */
  private outcomeOf(data: PanelData): InterventionOutcome | null {
    const o = this.ctx.interventions.outcome;
    return o && o.runId === data.inspection.id ? o : null;
  }

  private async metricColouring(data: PanelData, state: ViewState): Promise<Colouring> {
    const values = await this.perToken(data, state.layer, state.metric).catch((e) => {
      if (e instanceof Unavailable) return null;
      throw e;
    });
    return { values, name: `${METRIC_SYMBOL[state.metric]} (mean over channels)`, colormap: state.colormap, describe: (v) => `${METRIC_SYMBOL[state.metric]} ${formatValue(v)}` };
  }

  /** Boxes the intervened tokens and marks the first position whose prediction changed. */
  private markIntervention(outcome: InterventionOutcome | null): void {
    for (const s of this.spans) {
      s.classList.remove('intervened', 'first-changed');
      delete s.dataset.kl;
      delete s.dataset.dloss;
    }
    if (!outcome) return;
    const { kl, dLoss, firstChanged } = outcome.effect;
    this.spans.forEach((s, t) => {
      s.dataset.kl = String(kl[t]);
      if (t < dLoss.length) s.dataset.dloss = String(dLoss[t]);
    });
    for (const t of outcome.positions) this.spans[t]?.classList.add('intervened');
    if (firstChanged !== null) this.spans[firstChanged]?.classList.add('first-changed');
  }

  private build(data: PanelData): void {
    const ins = data.inspection;
    this.spans = Array.from({ length: ins.length }, (_, i) => {
      const s = document.createElement('span');
      s.className = 'token';
      s.id = `token-${i}`;
      s.dataset.index = String(i);
      s.setAttribute('role', 'option');
      // The span is white-space: pre, so the newline after each ⏎ breaks the row there.
      s.textContent = visibleToken(ins.tokens?.[i] ?? `#${ins.ids![i]}`).replace(/⏎/g, '⏎\n');
      return s;
    });
    // <wbr> between tokens: a long line may wrap there (never inside a token, whose text is pre).
    this.strip.replaceChildren(...this.spans.flatMap((s, i) => (i ? [document.createElement('wbr'), s] : [s])));
    this.strip.setAttribute('aria-label', `${ins.length} tokens of ${ins.title}`);
    this.builtFor = ins.id;
    this.colouredFor = null;
    this.selected = null;
    this.perTokenCache.clear();
  }

  /** The metric's mean over channels at each token: from the layer summary once it exists. */
  private async perToken(data: PanelData, layer: number, metric: TokenMetric): Promise<Float32Array> {
    const fromSummary = data.summary(layer)?.perToken[metric];
    if (fromSummary) return fromSummary;
    const key = `${data.inspection.id}:${layer}:${metric}`;
    const cached = this.perTokenCache.get(key);
    if (cached) return cached;
    const a = data.analysis(layer);
    if (!a) throw new Unavailable(`layer ${layer} has no internals`);
    const m = await a.metric(metric);
    const v = rowMeans(m.data, m.rows, m.cols);
    this.perTokenCache.set(key, v);
    return v;
  }

  private colour(state: ViewState, c: Colouring): void {
    const v = c.values;
    const colormap = c.colormap;
    let min = Infinity, max = -Infinity;
    if (v) for (const x of v) if (Number.isFinite(x)) { if (x < min) min = x; if (x > max) max = x; }
    const has = v !== null && Number.isFinite(min);
    const scale = has ? colorScale(min, max, isDiverging(colormap)) : null;
    this.range = { min, max };
    this.legend.setName(c.name);
    this.legend.update(colormap, scale, min, max);
    this.strip.setAttribute('aria-label', `${this.spans.length} tokens coloured by ${c.name}${state.stripValues === 'metric' ? ` of layer ${state.layer}` : ''}`);
    for (let i = 0; i < this.spans.length; i++) {
      const s = this.spans[i];
      if (!scale || !v || !Number.isFinite(v[i])) {
        s.style.background = s.style.color = '';
        continue;
      }
      const t = scale.hi > scale.lo ? (v[i] - scale.lo) / (scale.hi - scale.lo) : 0;
      const [r, g, b] = colormapRgb(colormap, Number.isFinite(t) ? t : 0);
      s.style.background = `rgb(${r}, ${g}, ${b})`;
      // Dark text on light tints: relative luminance with sRGB weights.
      s.style.color = 0.2126 * r + 0.7152 * g + 0.0722 * b > 140 ? '#000' : '#fff';
      s.setAttribute('aria-label', `token ${i + (this.ctx.data()?.inspection.offset ?? 0)} ${JSON.stringify(this.ctx.data()?.inspection.tokens?.[i] ?? '')}, ${c.describe(v[i])}`);
    }
  }

  private select(token: number | null): void {
    if (token === this.selected) return;
    if (this.selected !== null) {
      this.spans[this.selected]?.classList.remove('selected');
      this.spans[this.selected]?.setAttribute('aria-selected', 'false');
    }
    this.selected = token;
    if (token === null || !this.spans[token]) {
      this.strip.removeAttribute('aria-activedescendant');
      return;
    }
    const s = this.spans[token];
    s.classList.add('selected');
    s.setAttribute('aria-selected', 'true');
    this.strip.setAttribute('aria-activedescendant', s.id);
    s.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }

  private underlineAnnotations(): void {
    for (const s of this.spans) {
      s.classList.remove('annotated');
      s.removeAttribute('title');
    }
    // Stale annotations (text changed, not found again) are listed, never drawn on tokens.
    // Annotations are in the sample's positions; a long run's strip shows its window, from its offset.
    const off = this.ctx.data()?.inspection.offset ?? 0;
    for (const a of this.ctx.annotations()) {
      if (a.stale) continue;
      for (let i = Math.max(0, a.tokens[0] - off); i < a.tokens[1] - off && i < this.spans.length; i++) {
        this.spans[i].classList.add('annotated');
        this.spans[i].title = a.note ? `${a.label}: ${a.note}` : a.label;
      }
    }
  }

  private indexOf(target: EventTarget | null): number | null {
    const i = target instanceof HTMLElement ? target.dataset.index : undefined;
    return i === undefined ? null : Number(i);
  }

  private showTooltip(i: number, span: HTMLElement, pointer: MouseEvent): void {
    const data = this.ctx.data();
    if (!data) return;
    const ins = data.inspection;
    const layer = this.ctx.store.get().layer;
    const lines = [`token ${i + ins.offset} ${JSON.stringify(ins.tokens?.[i] ?? '')}${ins.ids ? ` · id ${ins.ids[i]}` : ''}`];
    const summary = data.summary(layer);
    const values = TOKEN_METRICS.map((m) => [m, summary?.perToken[m]?.[i]] as const).filter(([, v]) => v !== undefined);
    if (values.length) lines.push(`layer ${layer}: ${values.map(([m, v]) => `${METRIC_SYMBOL[m]} ${formatValue(v!)}`).join(' · ')}`);
    else if (this.values && this.ctx.store.get().stripValues === 'metric') lines.push(`layer ${layer}: ${METRIC_SYMBOL[this.ctx.store.get().metric]} ${formatValue(this.values[i])}`);
    const outcome = this.outcomeOf(data);
    if (outcome) {
      const { kl, dLoss } = outcome.effect;
      lines.push(`${outcome.specs.join('; ')}: KL ${formatValue(kl[i])}${i < dLoss.length ? ` · Δloss ${formatValue(dLoss[i])}` : ''}`);
    }
    this.tooltip.replaceChildren(...lines.map((l) => Object.assign(document.createElement('div'), { textContent: l })));
    this.tooltip.dataset.index = String(i);
    this.tooltip.hidden = false;
    // A token holding a newline has a box on each row: anchor on the one under the pointer.
    const rects = [...span.getClientRects()];
    const r = rects.find((b) => pointer.clientY >= b.top && pointer.clientY <= b.bottom) ?? span.getBoundingClientRect();
    placeTooltip(this.tooltip, r);
  }

  snapshot(): HTMLCanvasElement {
    // One cell per row a token covers: a newline inside a token's text ends the cell's row.
    const cells = this.spans.flatMap((s, i): TextCell[] => {
      const rows = (s.textContent ?? '').split('\n');
      if (rows.length > 1 && rows[rows.length - 1] === '') rows.pop();
      const style = { background: s.style.background || undefined, color: s.style.color || undefined, outlined: i === this.selected };
      return rows.map((text, k) => ({ ...style, text, breakAfter: k < rows.length - 1 || (s.textContent ?? '').endsWith('\n') }));
    });
    return drawFlow(cells, Math.max(400, this.strip.clientWidth), getComputedStyle(this.element));
  }

  describe(): ViewDescription {
    const colours = new Set(this.spans.map((s) => s.style.background)).size;
    return { drawn: this.spans.length > 0 && this.values !== null, distinctColors: colours, min: this.range.min, max: this.range.max };
  }
}

/** The effect as the strip colours it: KL on a sequential map, Δloss (signed) on a diverging one. */
function effectColouring(outcome: InterventionOutcome, by: 'kl' | 'dloss', colormap: Colormap): Colouring {
  const { kl, dLoss } = outcome.effect;
  if (by === 'kl') return { values: kl, name: 'KL(clean ‖ intervened), nats', colormap: isDiverging(colormap) ? 'magma' : colormap, describe: (v) => `KL ${formatValue(v)}` };
  // Δloss has no value after the last token: NaN there is left untinted.
  const values = Float64Array.from({ length: kl.length }, (_, t) => (t < dLoss.length ? dLoss[t] : NaN));
  return { values, name: 'Δloss of the next token, nats', colormap: isDiverging(colormap) ? colormap : 'RdBu', describe: (v) => `Δloss ${formatValue(v)}` };
}

export const tokenStripView: ViewSpec = {
  id: 'tokens',
  title: 'Tokens',
  area: 'strip',
  empty: 'No sample yet: select text in an editor and run “Mamba Scope: Inspect Selection”, or “Inspect File”.',
  create: (ctx) => new TokenStripView(ctx),
};
