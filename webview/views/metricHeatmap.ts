/**
 * The main heatmap: the chosen metric (Δ by default) of the selected layer, tokens × channels,
 * rows in the chosen channel order. Mamba-2's Δ has one column per head, so its rows are heads.
 */
import { METRIC_LABELS, METRIC_SYMBOL, Unavailable, type Matrix } from '../analysis/layerAnalysis';
import type { Heatmap } from '../render/heatmap';
import { dumpKey } from '../../src/engine/formats/dump';
import { hooksOf } from '../export';
import { colourHeatmap, linkedHeatmap, scaleControl, syncHeatmap, tokensAlongX, visibleSlice } from './common';
import type { ExportSlice, View, ViewContext, ViewSpec, ViewUpdate } from './view';

const ID = 'heatmap';

class MetricHeatmapView implements View {
  readonly element: HTMLElement;
  private readonly heatmap: Heatmap;
  private readonly title: HTMLElement;
  private shown: { key: string; m: Matrix; rowName: string; name: string; hooks: readonly string[] } | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'metric-heatmap';
    this.title = document.createElement('h3');
    this.title.className = 'view-title';
    this.heatmap = linkedHeatmap({
      label: 'metric heatmap',
      valueName: 'value',
      store: ctx.store,
      data: ctx.data,
      analysis: () => (this.shown?.rowName === 'head' ? undefined : ctx.data()?.analysis(ctx.store.get().layer)),
      rowsAreChannels: () => this.shown?.rowName !== 'head',
    });
    const bar = document.createElement('div');
    bar.className = 'view-controls';
    bar.append(this.title, scaleControl(ctx.store, ID));
    this.element.append(bar, this.heatmap.element);
  }

  async update({ data, state, stale }: ViewUpdate): Promise<void> {
    const analysis = data.analysis(state.layer);
    if (!analysis) throw new Unavailable(`Layer ${state.layer} has no internals in this data: pick another layer.`);
    const key = `${data.inspection.id}:${state.layer}:${state.metric}:${state.channelOrder}`;
    if (this.shown?.key !== key) {
      const m = await analysis.metric(state.metric);
      const order = await analysis.order(state.channelOrder, state.metric);
      if (stale()) return;
      const rowName = m.cols === analysis.channels ? 'channel' : 'head';
      colourHeatmap(this.heatmap, state, ID); // before the data: one draw, not two
      this.heatmap.setData(tokensAlongX(m), order);
      this.heatmap.setLabels(`${METRIC_LABELS[state.metric]} heatmap, layer ${state.layer}`, METRIC_SYMBOL[state.metric], rowName);
      this.title.textContent = `${METRIC_LABELS[state.metric]} · layer ${state.layer} · tokens × ${rowName}s`;
      // Δ is the layer's delta itself (hook_delta); the gate, forget factor and write magnitude are derived from internals.
      const hooks = state.metric === 'delta' ? hooksOf(data, dumpKey(state.layer, 'delta')) : [];
      this.shown = { key, m, rowName, name: `layer${state.layer}-${state.metric}`, hooks };
    }
    const rows = this.shown.m.cols;
    syncHeatmap(this.heatmap, state, ID, rows, state.channel !== null && state.channel < rows && this.shown.rowName === 'channel' ? state.channel : null);
  }

  describe() {
    return this.heatmap.describe();
  }

  snapshot(): HTMLCanvasElement {
    return this.heatmap.snapshot();
  }

  slice(): ExportSlice | null {
    const data = this.ctx.data();
    const slice = this.shown && data ? visibleSlice(this.heatmap, this.shown.m, this.shown.name, data, this.shown.rowName) : null;
    return slice && { ...slice, hooks: this.shown!.hooks };
  }

  dispose(): void {
    this.heatmap.dispose();
  }
}

export const metricHeatmapView: ViewSpec = {
  id: ID,
  title: 'Heatmap',
  area: 'main',
  empty: 'No inspection yet: select text in an editor and run “Mamba Scope: Inspect Selection” (or open a tensor dump).',
  create: (ctx) => new MetricHeatmapView(ctx),
};
