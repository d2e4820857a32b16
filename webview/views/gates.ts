/**
 * The gates of the selected layer, tokens × channels, stacked with one shared window:
 * the output gate silu(z), the forget factor meanₙ exp(Δ·A) (A = −exp(A_log) from the loaded
 * model) and the write magnitude |Δ·u|·‖B‖. Each panel fails alone: without the model the forget
 * factor says so while the other two still draw.
 */
import type { TokenMetric } from '../../src/protocol';
import { METRIC_LABELS, METRIC_SYMBOL, Unavailable, type Matrix } from '../analysis/layerAnalysis';
import type { Heatmap } from '../render/heatmap';
import { colourHeatmap, linkedHeatmap, scaleControl, stackCanvases, syncHeatmap, tokensAlongX, visibleSlice } from './common';
import type { ExportSlice, View, ViewContext, ViewDescription, ViewSpec, ViewUpdate } from './view';

const ID = 'gates';
const GATES: readonly TokenMetric[] = ['gate', 'forget', 'write'];

interface Panel {
  readonly metric: TokenMetric;
  readonly element: HTMLElement;
  readonly heatmap: Heatmap;
  readonly message: HTMLElement;
  shown: { key: string; m: Matrix } | null;
}

class GatesView implements View {
  readonly element: HTMLElement;
  private readonly panels: Panel[];
  /** The panel last clicked or focused: the one exported as CSV/.npy. */
  private active: Panel | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'gates';
    this.panels = GATES.map((metric) => {
      const element = document.createElement('div');
      element.className = 'gate-panel';
      element.dataset.metric = metric;
      const title = document.createElement('h3');
      title.className = 'view-title';
      title.textContent = METRIC_LABELS[metric];
      const message = document.createElement('div');
      message.className = 'view-message';
      message.setAttribute('role', 'status');
      message.hidden = true;
      const heatmap = linkedHeatmap({
        label: `${METRIC_LABELS[metric]} heatmap`,
        valueName: METRIC_SYMBOL[metric],
        store: ctx.store,
        data: ctx.data,
        analysis: () => ctx.data()?.analysis(ctx.store.get().layer),
      });
      element.append(title, message, heatmap.element);
      const panel: Panel = { metric, element, heatmap, message, shown: null };
      for (const ev of ['pointerdown', 'focusin']) element.addEventListener(ev, () => (this.active = panel));
      return panel;
    });
    // One scale for the three panels: they are read against each other.
    const bar = document.createElement('div');
    bar.className = 'view-controls';
    bar.append(scaleControl(ctx.store, ID));
    this.element.append(bar, ...this.panels.map((p) => p.element));
  }

  async update({ data, state, stale }: ViewUpdate): Promise<void> {
    const analysis = data.analysis(state.layer);
    if (!analysis) throw new Unavailable(`Layer ${state.layer} has no internals in this data: pick another layer.`);
    await Promise.all(this.panels.map(async (p) => {
      const key = `${data.inspection.id}:${state.layer}:${state.channelOrder}`;
      if (p.shown?.key !== key) {
        try {
          const m = await analysis.metric(p.metric);
          const order = await analysis.order(state.channelOrder, p.metric);
          if (stale()) return;
          colourHeatmap(p.heatmap, state, ID);
          p.heatmap.setData(tokensAlongX(m), order);
          p.heatmap.setLabels(`${METRIC_LABELS[p.metric]} heatmap, layer ${state.layer}`, METRIC_SYMBOL[p.metric], 'channel');
          p.shown = { key, m };
          p.message.hidden = true;
          p.heatmap.element.hidden = false;
        } catch (e) {
          if (!(e instanceof Unavailable) || stale()) throw e;
          p.shown = null;
          p.heatmap.setData(null);
          p.message.textContent = e.message;
          p.message.hidden = false;
          p.heatmap.element.hidden = true;
          return;
        }
      }
      if (p.shown) syncHeatmap(p.heatmap, state, ID, p.shown.m.cols);
    }));
    if (this.panels.every((p) => !p.shown)) throw new Unavailable(this.panels.map((p) => p.message.textContent).join(' '));
  }

  describe(): ViewDescription {
    const ds = this.panels.filter((p) => p.shown).map((p) => p.heatmap.describe());
    if (!ds.length) return { drawn: false, distinctColors: 0, min: NaN, max: NaN };
    return { drawn: ds.every((d) => d.drawn), distinctColors: Math.min(...ds.map((d) => d.distinctColors)), min: Math.min(...ds.map((d) => d.min)), max: Math.max(...ds.map((d) => d.max)) };
  }

  snapshot(): HTMLCanvasElement {
    return stackCanvases(this.panels.filter((p) => p.shown).map((p) => p.heatmap.snapshot()));
  }

  /** The panel last clicked or focused, else the first one with data. */
  slice(): ExportSlice | null {
    const data = this.ctx.data();
    const p = this.active?.shown ? this.active : this.panels.find((q) => q.shown);
    return p && data ? visibleSlice(p.heatmap, p.shown!.m, `layer${this.ctx.store.get().layer}-${p.metric}`, data, 'channel') : null;
  }

  dispose(): void {
    for (const p of this.panels) p.heatmap.dispose();
  }
}

export const gatesView: ViewSpec = {
  id: ID,
  title: 'Gates',
  area: 'main',
  empty: 'No inspection yet: run “Mamba Scope: Inspect Selection” to see silu(z), the forget factor and the write magnitude.',
  create: (ctx) => new GatesView(ctx),
};
