/**
 * The overview of a long run (issue 13): the whole sample at once, from what the run kept. Four
 * series over position (the next-token loss, and the selected layer's mean Δ, near-reset fraction
 * and ‖h_t‖) and the layer's tiles (per 64-token block and column: the mean or max of Δ, the gate
 * or the forget factor), with the window in view shaded on every chart.
 *
 * The window selector: drag the band to move it, drag its edges to resize it, click elsewhere to
 * centre it there; with the charts focused ←/→ move it by an eighth, PageUp/PageDown by a width,
 * Home/End to the ends, +/− narrow or widen it. Zooming the tile heatmap (wheel, +/−) down to
 * FULL_RESOLUTION_TOKENS or fewer makes what it shows the window. The other views show the
 * window's internals at full resolution, recomputed from the nearest checkpoint.
 */
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import type { VscodeSingleSelect } from '@vscode-elements/elements/dist/vscode-single-select/vscode-single-select.js';
import { FULL_RESOLUTION_TOKENS } from '../../src/protocol';
import { Unavailable } from '../analysis/layerAnalysis';
import { Heatmap } from '../render/heatmap';
import { LineChart } from '../render/lineChart';
import type { LongRun, PositionSeries, TileMetric, TileStat } from '../long/longRun';
import { TILE_METRICS, TILE_STATS } from '../long/longRun';
import { clampWindow, scaleWindow, shiftWindow, windowAround, type TokenWindow } from '../long/window';
import { colourHeatmap, el, scaleControl, stackCanvases } from './common';
import type { ExportSlice, View, ViewContext, ViewDescription, ViewSpec, ViewUpdate } from './view';

const ID = 'overview';

/** The charts, top to bottom: the loss is the model's, the rest the selected layer's. */
const CHARTS: readonly { readonly key: 'loss' | PositionSeries; readonly label: string }[] = [
  { key: 'loss', label: 'next-token loss (nats)' },
  { key: 'meanDelta', label: 'mean Δ over channels' },
  { key: 'resetFraction', label: 'near-reset fraction' },
  { key: 'stateNorm', label: '‖h_t‖' },
];

const TILE_LABELS: Record<TileMetric, string> = { delta: 'Δ', gate: 'silu(z)', forget: 'exp(ΔA)' };

/** CSS pixels of a band edge that resize rather than move it. */
const EDGE_PX = 6;

class OverviewView implements View {
  readonly element: HTMLElement;
  private readonly title: HTMLElement;
  private readonly charts: Map<string, { chart: LineChart; caption: HTMLElement }>;
  private readonly brush: HTMLElement;
  private readonly tiles: Heatmap;
  private readonly tileSelect: VscodeSingleSelect;
  private tileChoice: { metric: TileMetric; stat: TileStat } = { metric: 'delta', stat: 'mean' };
  private run: LongRun | null = null;
  private shownSeries: string | null = null;
  private shownTiles: string | null = null;
  private values = new Map<string, Float32Array>();
  private drag: { x: number; mode: 'move' | 'start' | 'end'; from: TokenWindow } | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = el('div', 'overview');
    const bar = el('div', 'view-controls');
    this.title = el('h3', 'view-title');
    this.tileSelect = document.createElement('vscode-single-select') as VscodeSingleSelect;
    this.tileSelect.setAttribute('aria-label', 'What the tiles show');
    for (const m of TILE_METRICS) for (const s of TILE_STATS) {
      const o = document.createElement('vscode-option');
      o.setAttribute('value', `${m}:${s}`);
      o.textContent = `${s} ${TILE_LABELS[m]} per block`;
      this.tileSelect.append(o);
    }
    this.tileSelect.value = 'delta:mean';
    this.tileSelect.addEventListener('change', () => {
      const [metric, stat] = this.tileSelect.value.split(':') as [TileMetric, TileStat];
      this.tileChoice = { metric, stat };
      this.refresh();
    });
    bar.append(this.title, this.tileSelect, scaleControl(ctx.store, ID));
    this.brush = el('div', 'overview-charts');
    this.brush.tabIndex = 0;
    this.brush.setAttribute('role', 'slider');
    this.brush.setAttribute('aria-label', 'Window in view: drag to move, drag an edge to resize, ←/→ PageUp/PageDown Home/End to move, +/− to narrow or widen');
    this.charts = new Map(CHARTS.map(({ key, label }) => {
      const row = el('div', 'overview-row');
      const caption = el('span', 'overview-caption');
      caption.textContent = label;
      const chart = new LineChart({ label, valueName: label, xLabel: (t) => `token ${t}` });
      row.append(caption, chart.element);
      this.brush.append(row);
      return [key, { chart, caption }];
    }));
    this.tiles = new Heatmap({
      label: 'tiles over the whole sample',
      xName: 'block',
      yName: 'channel',
      valueName: 'Δ',
      xLabel: (b) => this.blockLabel(b),
      onSelect: (b) => this.centreOn(b * (this.run?.blockSize ?? 1)),
      onViewport: (v) => this.zoomed(v.x0, v.x1),
    });
    this.element.append(bar, this.brush, this.tiles.element);
    this.bindBrush();
  }

  update({ data, state }: ViewUpdate): void {
    const long = data.long;
    if (!long) throw new Unavailable('The overview is for long samples: more than ' + FULL_RESOLUTION_TOKENS + ' tokens.');
    this.run = long.run;
    const w = state.window ?? [data.inspection.offset, data.inspection.offset + data.inspection.length];
    this.refresh();
    for (const { chart } of this.charts.values()) {
      chart.setBand(w);
      chart.setMarker(state.token === null ? null : state.token + data.inspection.offset);
    }
    const status = long.fullResolution ? 'full resolution' : 'recomputing from the nearest checkpoint…';
    this.title.textContent = `Whole sample: ${long.run.tokens} tokens · layer ${state.layer} · window ${w[0]}–${w[1] - 1} (${status})`;
    this.brush.setAttribute('aria-valuemin', '0');
    this.brush.setAttribute('aria-valuemax', String(long.run.tokens));
    this.brush.setAttribute('aria-valuenow', String(w[0]));
    this.brush.setAttribute('aria-valuetext', `tokens ${w[0]} to ${w[1] - 1} of ${long.run.tokens}`);
  }

  /** Redraws the series and the tiles when the layer, the run or the tile choice changed. */
  private refresh(): void {
    const run = this.run;
    if (!run) return;
    const state = this.ctx.store.get();
    const layer = state.layer;
    const seriesKey = `${run.params.runId}:${layer}`;
    if (this.shownSeries !== seriesKey) {
      this.values = new Map();
      const loss = new Float32Array(run.tokens).fill(NaN);
      loss.set(run.nll);
      for (const { key } of CHARTS) {
        const v = key === 'loss' ? loss : run.series(layer, key);
        const { chart, caption } = this.charts.get(key)!;
        chart.setData(v);
        if (v) this.values.set(key, v);
        caption.textContent = CHARTS.find((c) => c.key === key)!.label + (key === 'resetFraction' ? ` (τ ${run.threshold})` : '') + (v ? '' : ': none in this layer');
      }
      this.shownSeries = seriesKey;
    }
    const { metric, stat } = this.tileChoice;
    const tileKey = `${seriesKey}:${metric}:${stat}`;
    if (this.shownTiles !== tileKey) {
      const t = run.tiles(layer, metric, stat);
      colourHeatmap(this.tiles, state, ID);
      this.tiles.setData(t ? { data: t.data, width: t.blocks, height: t.columns, xStride: t.columns, yStride: 1 } : null);
      this.tiles.setLabels(`${stat} ${TILE_LABELS[metric]} per ${run.blockSize}-token block, layer ${layer}`, `${stat} ${TILE_LABELS[metric]}`, t && t.columns !== run.tiles(layer, 'gate', 'mean')?.columns ? 'head' : 'channel');
      this.shownTiles = tileKey;
    }
    colourHeatmap(this.tiles, state, ID);
  }

  private blockLabel(b: number): string {
    const n = this.run?.blockSize ?? 1;
    return `${b} (tokens ${b * n}–${Math.min(this.run?.tokens ?? 0, (b + 1) * n) - 1})`;
  }

  private get window(): TokenWindow | null {
    return this.ctx.store.get().window;
  }

  private setWindow(w: TokenWindow): void {
    const run = this.run;
    if (run) this.ctx.store.set({ window: clampWindow(w, run.tokens) });
  }

  private centreOn(t: number): void {
    const w = this.window;
    if (this.run && w) this.setWindow(windowAround(t, w[1] - w[0], this.run.tokens));
  }

  /** The tile heatmap zoomed to blocks [x0, x1): at full-resolution width or less, that is the window. */
  private zoomed(x0: number, x1: number): void {
    const run = this.run;
    if (!run) return;
    const start = Math.floor(x0) * run.blockSize, end = Math.min(run.tokens, Math.ceil(x1) * run.blockSize);
    if (end - start <= FULL_RESOLUTION_TOKENS) this.setWindow([start, end]);
  }

  /** Token under a pointer x over the charts. */
  private tokenAt(clientX: number): number {
    const r = this.brush.getBoundingClientRect();
    const plot = this.charts.get('loss')!.chart.element.getBoundingClientRect();
    const left = plot.width > 0 ? plot.left : r.left, width = plot.width > 0 ? plot.width : r.width;
    return ((clientX - left) / Math.max(1, width)) * (this.run?.tokens ?? 0);
  }

  private bindBrush(): void {
    const b = this.brush;
    b.addEventListener('pointerdown', (e) => {
      const w = this.window, run = this.run;
      if (!w || !run || e.button !== 0) return;
      const t = this.tokenAt(e.clientX);
      const plot = this.charts.get('loss')!.chart.element.getBoundingClientRect();
      const edge = (EDGE_PX / Math.max(1, plot.width)) * run.tokens;
      const mode = Math.abs(t - w[0]) <= edge ? 'start' : Math.abs(t - w[1]) <= edge ? 'end' : t >= w[0] && t < w[1] ? 'move' : null;
      b.setPointerCapture(e.pointerId);
      if (mode) this.drag = { x: t, mode, from: w };
      else {
        // Elsewhere: the window jumps there, and the drag goes on moving it.
        const moved = windowAround(t, w[1] - w[0], run.tokens);
        this.setWindow(moved);
        this.drag = { x: t, mode: 'move', from: moved };
      }
      e.preventDefault();
    });
    b.addEventListener('pointermove', (e) => {
      const d = this.drag;
      if (!d || !this.run) return;
      const dt = this.tokenAt(e.clientX) - d.x;
      const [s, en] = d.from;
      if (d.mode === 'move') this.setWindow(shiftWindow(d.from, Math.round(dt), this.run.tokens));
      else if (d.mode === 'start') this.setWindow([Math.min(en - 1, s + dt), en]);
      else this.setWindow([s, Math.max(s + 1, en + dt)]);
    });
    const end = () => (this.drag = null);
    b.addEventListener('pointerup', end);
    b.addEventListener('pointercancel', end);
    b.addEventListener('keydown', (e) => {
      const w = this.window, run = this.run;
      if (!w || !run) return;
      const width = w[1] - w[0];
      const L = run.tokens;
      const next: TokenWindow | null =
        e.key === 'ArrowLeft' ? shiftWindow(w, -Math.max(1, Math.round(width / 8)), L)
        : e.key === 'ArrowRight' ? shiftWindow(w, Math.max(1, Math.round(width / 8)), L)
        : e.key === 'PageUp' ? shiftWindow(w, -width, L)
        : e.key === 'PageDown' ? shiftWindow(w, width, L)
        : e.key === 'Home' ? shiftWindow(w, -L, L)
        : e.key === 'End' ? shiftWindow(w, L, L)
        : e.key === '+' || e.key === '=' ? scaleWindow(w, 0.5, L)
        : e.key === '-' || e.key === '_' ? scaleWindow(w, 2, L)
        : null;
      if (!next) return;
      this.setWindow(next);
      // The panel's own ←/→ (the token) must not also move.
      e.preventDefault();
      e.stopPropagation();
    });
  }

  describe(): ViewDescription {
    const d = this.tiles.describe();
    const delta = this.values.get('meanDelta');
    let min = Infinity, max = -Infinity;
    if (delta) for (const v of delta) if (Number.isFinite(v)) { if (v < min) min = v; if (v > max) max = v; }
    const w = this.window;
    return { drawn: d.drawn && this.values.size > 0, distinctColors: d.distinctColors, min: delta ? min : NaN, max: delta ? max : NaN, shows: w ? `window ${w[0]}-${w[1]}` : undefined };
  }

  snapshot(): HTMLCanvasElement {
    return stackCanvases([...[...this.charts.values()].map((c) => c.chart.snapshot()), this.tiles.snapshot()]);
  }

  /** The series drawn, [L, 4] (loss, mean Δ, near-reset fraction, ‖h_t‖; NaN where there is none), for CSV/.npy. */
  slice(): ExportSlice | null {
    const run = this.run;
    if (!run) return null;
    const L = run.tokens, K = CHARTS.length;
    const out = new Float32Array(L * K).fill(NaN);
    CHARTS.forEach(({ key }, k) => {
      const v = this.values.get(key);
      if (v) for (let t = 0; t < L; t++) out[t * K + k] = v[t];
    });
    return {
      name: `layer${this.ctx.store.get().layer}-overview`,
      tensor: { shape: [L, K], data: out },
      rowLabels: Array.from({ length: L }, (_, t) => `token ${t}`),
      columnLabels: CHARTS.map((c) => c.key),
    };
  }

  dispose(): void {
    for (const { chart } of this.charts.values()) chart.dispose();
    this.tiles.dispose();
  }
}

export const overviewView: ViewSpec = {
  id: ID,
  title: 'Overview',
  area: 'overview',
  empty: 'The overview of a long sample (more than ' + FULL_RESOLUTION_TOKENS + ' tokens) appears here after “Inspect File”.',
  when: (data) => data.long !== null,
  create: (ctx) => new OverviewView(ctx),
};
