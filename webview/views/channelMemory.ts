/**
 * The selected layer's channels by their effective memory (issue 13 item 4, LongMamba's local and
 * global channels; src/engine/analysis/channelMemory.ts defines it): how many tokens back a write
 * at the channel's mean Δ over the whole sample keeps τ of itself. The channels sorted from the
 * shortest memory to the longest, on a log scale, the rank where they cross the horizon marked:
 * left of it the local channels, right of it the global ones. A click selects that channel.
 *
 * A long run's mean Δ comes from its per-block tiles (the whole sample, not the window in view),
 * a short run's from its Δ at every token. Mamba-2's "channels" are its heads.
 */
import { ChannelMemory, DEFAULT_HORIZON, memoryAtMeanDelta, type ChannelMemoryReport } from '../../src/engine/analysis/channelMemory';
import type { Tensor } from '../../src/engine/tensor';
import { Unavailable } from '../analysis/layerAnalysis';
import { LineChart } from '../render/lineChart';
import type { PanelData } from '../panelData';
import { el } from './common';
import type { ExportSlice, View, ViewContext, ViewDescription, ViewSpec, ViewUpdate } from './view';

const ID = 'memory';

/** The layer's effective memory over the whole sample, and the tokens it is over. */
async function memoryOf(data: PanelData, layer: number, A: Tensor<Float64Array>, threshold: number): Promise<{ report: ChannelMemoryReport; tokens: number }> {
  const long = data.long?.run;
  if (long) {
    const t = long.tiles(layer, 'delta', 'mean');
    if (!t) throw new Unavailable(`Layer ${layer} has no selective scan: no channel memory.`);
    const mean = new Float64Array(t.columns);
    for (let b = 0; b < t.blocks; b++) {
      const n = Math.min(long.blockSize, long.tokens - b * long.blockSize);
      for (let c = 0; c < t.columns; c++) mean[c] += t.data[b * t.columns + c] * n;
    }
    return { report: memoryAtMeanDelta(A, mean.map((s) => s / long.tokens), threshold, DEFAULT_HORIZON, `layer ${layer}`), tokens: long.tokens };
  }
  const analysis = data.analysis(layer);
  if (!analysis) throw new Unavailable(`Layer ${layer} has no internals in this data: pick another layer.`);
  const m = await analysis.metric('delta');
  const memory = new ChannelMemory(A, `layer ${layer}`);
  memory.push({ shape: [m.rows, m.cols], data: m.data });
  return { report: memory.finish(threshold, DEFAULT_HORIZON), tokens: m.rows };
}

class ChannelMemoryView implements View {
  readonly element: HTMLElement;
  private readonly title: HTMLElement;
  private readonly chart: LineChart;
  private shown: { key: string; report: ChannelMemoryReport; order: Int32Array } | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = el('div', 'channel-memory');
    this.title = el('h3', 'view-title');
    this.chart = new LineChart({
      label: 'effective memory per channel, sorted',
      valueName: 'log₁₀ tokens',
      xName: 'channels',
      xLabel: (rank) => {
        const s = this.shown;
        if (!s) return String(rank);
        const c = s.order[rank], m = s.report.memory[c];
        return `channel ${c} (${Number.isFinite(m) ? `${m.toFixed(m < 10 ? 1 : 0)} tokens` : 'never falls to τ'}, mean Δ ${s.report.meanDelta[c].toPrecision(3)})`;
      },
      onSelect: (rank) => this.shown && ctx.store.set({ channel: this.shown.order[rank] }),
    });
    this.element.append(this.title, this.chart.element);
  }

  async update({ data, state, stale }: ViewUpdate): Promise<void> {
    // A long run's memory is the whole sample's: moving the window does not change it.
    const key = `${data.long ? data.runId : data.inspection.id}:${state.layer}:${state.threshold}`;
    if (this.shown?.key === key) return;
    const A = data.model?.scans[state.layer]?.aLog;
    if (!A) throw new Unavailable(data.model ? `Layer ${state.layer} has no selective scan: no channel memory.` : 'The channel memory needs the model\'s A (A = −exp(A_log)): load the model.');
    const { report, tokens } = await memoryOf(data, state.layer, { shape: A.shape, data: Float64Array.from(A.data, (v) => -Math.exp(v)) }, state.threshold);
    if (stale()) return;
    const order = Int32Array.from(report.memory.keys()).sort((a, b) => report.memory[a] - report.memory[b]);
    this.shown = { key, report, order };
    // Infinite memories (never below τ) have no log to draw: they stay at the right end, undrawn, and the title counts them.
    this.chart.setData(Float32Array.from(order, (c) => Math.log10(report.memory[c])));
    this.chart.setMarker(report.local);
    const finite = Array.from(order, (c) => report.memory[c]).filter(Number.isFinite);
    const median = finite.length ? finite[Math.floor(finite.length / 2)] : Infinity;
    const never = report.memory.length - finite.length;
    this.title.textContent = `Channel memory · layer ${state.layer}: ${report.global} of ${report.memory.length} global (≥ ${report.horizon} tokens), ${report.local} local; ` +
      `median ${Number.isFinite(median) ? median.toFixed(0) : '∞'} tokens${never ? `, ${never} never fall to τ` : ''} (τ ${state.threshold}, at each channel's mean Δ over ${tokens} tokens)`;
  }

  describe(): ViewDescription {
    const s = this.shown;
    if (!s) return { drawn: false, distinctColors: 0, min: NaN, max: NaN };
    const finite = Array.from(s.report.memory).filter(Number.isFinite);
    return { drawn: finite.length > 0, distinctColors: 2, min: Math.min(...finite), max: Math.max(...finite), shows: `${s.report.global} global, ${s.report.local} local` };
  }

  snapshot(): HTMLCanvasElement {
    return this.chart.snapshot();
  }

  /** Per channel, in channel order: its effective memory (inf: never falls to τ), its mean Δ, and 1 when global. */
  slice(): ExportSlice | null {
    const s = this.shown;
    if (!s) return null;
    const { memory, meanDelta, horizon } = s.report;
    const D = memory.length;
    const out = new Float32Array(D * 3);
    for (let c = 0; c < D; c++) out.set([memory[c], meanDelta[c], memory[c] >= horizon ? 1 : 0], c * 3);
    return {
      name: `layer${this.ctx.store.get().layer}-channel-memory`,
      tensor: { shape: [D, 3], data: out },
      rowLabels: Array.from({ length: D }, (_, c) => `channel ${c}`),
      columnLabels: ['memoryTokens', 'meanDelta', 'global'],
    };
  }

  dispose(): void {
    this.chart.dispose();
  }
}

export const channelMemoryView: ViewSpec = {
  id: ID,
  title: 'Memory',
  area: 'lower',
  empty: 'No inspection yet: run “Mamba Scope: Inspect File” to see each channel’s effective memory.',
  create: (ctx) => new ChannelMemoryView(ctx),
};
