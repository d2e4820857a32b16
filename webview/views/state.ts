/**
 * The state of the selected layer: h_t (channels × states) at the selected token, ‖h_t‖ over
 * time, and the selected channel's states over time. States are recomputed here from the layer's
 * Δ, u, B and the model's A (only what is shown; see analysis/stateScan.ts), or taken from the
 * data when a dump recorded h at that token.
 */
import { dumpKey } from '../../src/engine/formats/dump';
import { Unavailable, type LayerAnalysis } from '../analysis/layerAnalysis';
import { hooksOf } from '../export';
import { Heatmap } from '../render/heatmap';
import { LineChart } from '../render/lineChart';
import type { PanelData } from '../panelData';
import type { ViewState } from '../state';
import { colourHeatmap, scaleControl, stackCanvases, tokenLabel, tokensAlongX } from './common';
import type { ExportSlice, View, ViewContext, ViewDescription, ViewSpec, ViewUpdate } from './view';

const ID = 'state';

interface Section {
  readonly element: HTMLElement;
  readonly title: HTMLElement;
  readonly message: HTMLElement;
  readonly body: HTMLElement;
}

function section(className: string, title: string, body: HTMLElement): Section {
  const element = document.createElement('div');
  element.className = `state-section ${className}`;
  const h = document.createElement('h3');
  h.className = 'view-title';
  h.textContent = title;
  const message = document.createElement('div');
  message.className = 'view-message';
  message.setAttribute('role', 'status');
  message.hidden = true;
  element.append(h, message, body);
  return { element, title: h, message, body };
}

function show(s: Section, message: string | null): void {
  s.message.textContent = message ?? '';
  s.message.hidden = message === null;
  s.body.hidden = message !== null;
}

class StateView implements View {
  readonly element: HTMLElement;
  private readonly stateMap: Heatmap;
  private readonly norms: LineChart;
  private readonly trace: Heatmap;
  private readonly sections: { state: Section; norms: Section; trace: Section };
  private shownState: { key: string; data: Float32Array; D: number; N: number; t: number; hooks: readonly string[] } | null = null;
  private shownNorms: string | null = null;
  private shownTrace: { key: string; data: Float32Array; L: number; N: number; d: number } | null = null;

  constructor(private readonly ctx: ViewContext) {
    const { store } = ctx;
    this.element = document.createElement('div');
    this.element.className = 'state-view';
    this.stateMap = new Heatmap({
      label: 'state h_t at the selected token',
      xName: 'state',
      yName: 'channel',
      valueName: 'h',
      onSelect: (_n, d) => store.set({ channel: d }),
    });
    this.norms = new LineChart({ label: '‖h_t‖ over tokens', valueName: '‖h_t‖', onSelect: (t) => store.set({ token: t }), xLabel: (t) => tokenLabel(ctx.data(), t) });
    this.trace = new Heatmap({
      label: 'states of the selected channel over tokens',
      xName: 'token',
      yName: 'state',
      valueName: 'h',
      xLabel: (t) => tokenLabel(ctx.data(), t),
      onSelect: (t) => store.set({ token: t }),
    });
    this.sections = {
      state: section('state-at-token', 'h_t at the selected token (channels × states)', this.stateMap.element),
      norms: section('state-norms', '‖h_t‖ over tokens', this.norms.element),
      trace: section('state-trace', 'selected channel’s states over tokens', this.trace.element),
    };
    // One scale for both heatmaps of the view (the line chart of ‖h_t‖ has its own axis).
    const bar = document.createElement('div');
    bar.className = 'view-controls';
    bar.append(scaleControl(store, ID));
    this.element.append(bar, this.sections.state.element, this.sections.norms.element, this.sections.trace.element);
  }

  async update({ data, state, stale }: ViewUpdate): Promise<void> {
    const a = data.analysis(state.layer);
    if (!a) throw new Unavailable(`Layer ${state.layer} has no internals in this data: pick another layer.`);
    let scannerWhy: string | null = null;
    try {
      a.scanner();
    } catch (e) {
      if (!(e instanceof Unavailable)) throw e;
      scannerWhy = e.message;
    }
    if (scannerWhy && !a.hasRecordedStates) throw new Unavailable(scannerWhy);
    const base = `${data.inspection.id}:${state.layer}`;
    await this.updateNorms(a, base, state, scannerWhy, stale);
    await this.updateState(a, base, state, scannerWhy, data, stale);
    this.updateTrace(a, base, state, scannerWhy);
  }

  private async updateNorms(a: LayerAnalysis, base: string, state: ViewState, why: string | null, stale: () => boolean): Promise<void> {
    if (why) return show(this.sections.norms, `‖h_t‖ over time: ${why}`);
    if (this.shownNorms !== base) {
      const norms = await a.scanner().norms();
      if (stale()) return;
      this.norms.setData(norms);
      this.shownNorms = base;
    }
    this.norms.setMarker(state.token);
    show(this.sections.norms, null);
  }

  private async updateState(a: LayerAnalysis, base: string, state: ViewState, why: string | null, data: PanelData, stale: () => boolean): Promise<void> {
    const s = this.sections.state;
    const t = state.token;
    if (t === null) return show(s, 'Select a token (click the token strip or a heatmap, or press → ) to see its state h_t.');
    const key = `${base}:${t}`;
    if (this.shownState?.key !== key) {
      const recorded = a.recordedState(t);
      if (!recorded && why) return show(s, `h_t at token ${t}: the data has no recorded state there and ${why}`);
      const h = recorded ?? (await a.scanner().stateAt(t));
      if (stale()) return;
      const D = a.channels, N = h.length / D;
      const order = await a.order(state.channelOrder, state.metric);
      if (stale()) return;
      this.stateMap.setData({ data: h, width: N, height: D, xStride: 1, yStride: N }, order && order.length === D ? order : null);
      s.title.textContent = `h_t at token ${tokenLabel(data, t)} · layer ${state.layer} (${recorded ? 'recorded in the data' : 'recomputed from Δ, u, B, A'})`;
      // MambaLens's hook_h.{t} names the state after token t of the whole sample (a long run's window starts at its offset).
      this.shownState = { key, data: h, D, N, t, hooks: hooksOf(data, dumpKey(state.layer, 'h'), [data.inspection.offset + t]) };
    }
    colourHeatmap(this.stateMap, state, ID);
    this.stateMap.setCrosshair(null, state.channel);
    show(s, null);
  }

  private updateTrace(a: LayerAnalysis, base: string, state: ViewState, why: string | null): void {
    const s = this.sections.trace;
    const d = state.channel;
    if (why) return show(s, `Channel trace: ${why}`);
    if (d === null || d >= a.channels) return show(s, 'Select a channel (click a cell of a heatmap) to see its states over time.');
    const key = `${base}:${d}`;
    if (this.shownTrace?.key !== key) {
      const trace = a.scanner().channelTrace(d);
      const N = a.states, L = trace.length / N;
      this.trace.setData(tokensAlongX({ data: trace, rows: L, cols: N }));
      s.title.textContent = `channel ${d}: h_t[${d}, n] over tokens (states × tokens)`;
      this.shownTrace = { key, data: trace, L, N, d };
    }
    colourHeatmap(this.trace, state, ID);
    this.trace.setCrosshair(state.token, null);
    show(s, null);
  }

  describe(): ViewDescription {
    return this.shownState && !this.sections.state.body.hidden ? this.stateMap.describe() : { drawn: false, distinctColors: 0, min: NaN, max: NaN };
  }

  snapshot(): HTMLCanvasElement {
    return stackCanvases([this.stateMap.snapshot(), this.norms.snapshot(), ...(this.shownTrace ? [this.trace.snapshot()] : [])]);
  }

  /** h_t at the selected token, [channels, states]. */
  slice(): ExportSlice | null {
    const s = this.shownState;
    if (!s) return null;
    return {
      name: `layer${this.ctx.store.get().layer}-h-token${s.t}`,
      tensor: { shape: [s.D, s.N], data: s.data },
      rowLabels: Array.from({ length: s.D }, (_, d) => `channel ${d}`),
      columnLabels: Array.from({ length: s.N }, (_, n) => `state ${n}`),
      hooks: s.hooks,
    };
  }

  dispose(): void {
    this.stateMap.dispose();
    this.norms.dispose();
    this.trace.dispose();
  }
}

export const stateView: ViewSpec = {
  id: ID,
  title: 'State',
  area: 'side',
  empty: 'No inspection yet. After “Inspect Selection”, select a token to see the layer’s state h_t.',
  create: (ctx) => new StateView(ctx),
};
