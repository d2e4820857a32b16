/**
 * Numerics: how a second dump differs from the reference dump shown in the panel ("Compare
 * Dumps…"). The NaN/Inf finder names where each file first holds a non-finite value; the error
 * heatmap shows |a − b| of the chosen tensor, tokens × channels, with the first element beyond
 * tolerance ringed and one click away in the token strip, and under it the drift against position
 * (the largest |a − b| at each token, and per 512 tokens: fp32 at length); and for the selected layer, histograms
 * of exp(Δ·A) rounded to each precision count the decays that round to 1 (never forget) or
 * underflow to 0 (erase the state).
 */
import { decayHistograms, type DecayHistograms } from '../../src/engine/analysis/decayHistogram';
import { DEFAULT_BUCKET, trendText } from '../../src/engine/analysis/positionBuckets';
import type { ComparedTensor, ComparisonParams, FirstNonFinite } from '../../src/protocol';
import { Unavailable } from '../analysis/layerAnalysis';
import { decayFor } from '../inspection';
import type { PanelData } from '../panelData';
import { formatValue } from '../render/format';
import { Heatmap } from '../render/heatmap';
import { LineChart } from '../render/lineChart';
import type { ViewState } from '../state';
import { colourHeatmap, scaleControl, tokenLabel } from './common';
import type { ExportSlice, View, ViewContext, ViewSpec, ViewUpdate } from './view';

const ID = 'numerics';

class NumericsView implements View {
  readonly element: HTMLElement;
  private readonly title = el('h3', 'view-title');
  private readonly finder = el('div', 'nonfinite');
  private readonly tensorSelect = document.createElement('select');
  private readonly divergence = el('div', 'divergence');
  private readonly goTo = document.createElement('button');
  private readonly heatmap: Heatmap;
  private readonly driftCaption = el('div', 'numerics-drift');
  private readonly drift: LineChart;
  private readonly histTitle = el('h4', 'histogram-title');
  private readonly histograms = el('div', 'decay-histograms');
  private comparison: ComparisonParams | null = null;
  private chosen: ComparedTensor | null = null;
  private histogramKey: string | null = null;
  private shown: { name: string; data: Float32Array; rows: number; cols: number } | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = el('div', 'numerics');
    this.tensorSelect.className = 'numerics-tensor';
    this.tensorSelect.setAttribute('aria-label', 'Compared tensor');
    this.tensorSelect.addEventListener('change', () => {
      this.chosen = this.comparison?.tensors.find((t) => t.name === this.tensorSelect.value) ?? null;
      this.drawError(this.ctx.store.get());
    });
    this.goTo.type = 'button';
    this.goTo.className = 'goto-divergence';
    this.goTo.textContent = 'Select its token';
    this.goTo.addEventListener('click', () => {
      const t = this.chosen?.firstDivergence?.token;
      if (t !== null && t !== undefined) this.ctx.store.set({ token: t, ...(this.chosen?.layer !== null && this.chosen ? { layer: this.chosen.layer } : {}) });
    });
    this.heatmap = new Heatmap({
      label: 'error heatmap',
      xName: 'token',
      yName: 'channel',
      valueName: '|a − b|',
      xLabel: (x) => tokenLabel(ctx.data(), x),
      onSelect: (x) => this.rowsAreTokens() && ctx.store.set({ token: x }),
    });
    this.drift = new LineChart({ label: 'drift against position', valueName: 'max |a − b|', xLabel: (x) => (this.rowsAreTokens() ? tokenLabel(ctx.data(), x) : `row ${x}`), onSelect: (x) => this.rowsAreTokens() && ctx.store.set({ token: x }) });
    const pick = el('label', 'numerics-pick');
    pick.append('Tensor ', this.tensorSelect);
    const div = el('div', 'divergence-row');
    div.append(this.divergence, this.goTo);
    this.element.append(this.title, this.finder, pick, div, scaleControl(ctx.store, ID), this.heatmap.element, this.driftCaption, this.drift.element, this.histTitle, this.histograms);
  }

  update({ data, state }: ViewUpdate): void {
    const c = this.ctx.comparison();
    if (!c || c.dump.name !== data.inspection.id) throw new Unavailable('No comparison: run “Mamba Scope: Compare Dumps…” and pick a reference dump and a dump to check.');
    if (c !== this.comparison) this.showComparison(c);
    this.drawError(state);
    this.drawHistograms(data, state);
  }

  describe() {
    return { ...this.heatmap.describe(), shows: this.chosen?.name };
  }

  snapshot(): HTMLCanvasElement {
    return this.heatmap.snapshot();
  }

  slice(): ExportSlice | null {
    const data = this.ctx.data();
    const w = this.heatmap.visibleCells();
    if (!this.shown || !data || !w) return null;
    const { cols } = this.shown;
    const T = w.x1 - w.x0;
    const out = new Float32Array(T * w.rows.length);
    for (let t = 0; t < T; t++) w.rows.forEach((r, k) => (out[t * w.rows.length + k] = this.shown!.data[(w.x0 + t) * cols + r]));
    return {
      name: `${this.shown.name}-abs-error-tokens${w.x0}-${w.x1 - 1}`,
      tensor: { shape: [T, w.rows.length], data: out },
      rowLabels: Array.from({ length: T }, (_, t) => tokenLabel(data, w.x0 + t)),
      columnLabels: Array.from(w.rows, (r) => `channel ${r}`),
    };
  }

  dispose(): void {
    this.heatmap.dispose();
    this.drift.dispose();
  }

  private showComparison(c: ComparisonParams): void {
    this.comparison = c;
    const layer = c.firstDivergentLayer === null ? '' : ` · first divergent layer ${c.firstDivergentLayer}`;
    this.title.textContent = `${c.dump.name} (a, reference) vs ${c.b} (b)${layer}`;
    this.finder.replaceChildren(finderLine('a', c.dump.name, c.nonFinite.a), finderLine('b', c.b, c.nonFinite.b));
    const withMaps = c.tensors.filter((t) => c.errorMaps[t.name]);
    this.tensorSelect.replaceChildren(...withMaps.map((t) => new Option(`${t.name} · max |a−b| ${num(t.maxAbsError)} · normalized ${num(t.normalizedError)}${t.firstDivergence ? ' · diverges' : ''}`, t.name)));
    // Open on the first divergence of the first divergent layer: where to start looking.
    this.chosen = withMaps.find((t) => t.firstDivergence && t.layer === c.firstDivergentLayer) ?? withMaps.find((t) => t.firstDivergence) ?? withMaps[0] ?? null;
    if (this.chosen) this.tensorSelect.value = this.chosen.name;
  }

  private rowsAreTokens(): boolean {
    const data = this.ctx.data();
    return !!this.chosen && !!data && this.chosen.shape[0] === data.inspection.length && !/\.h$/.test(this.chosen.name);
  }

  private drawError(state: ViewState): void {
    const t = this.chosen, c = this.comparison;
    const m = t && c?.errorMaps[t.name];
    if (!t || !m) {
      this.heatmap.setData(null);
      this.drift.setData(null);
      this.driftCaption.textContent = '';
      this.shown = null;
      this.divergence.textContent = 'No tensor of the same shape in both files.';
      this.goTo.hidden = true;
      return;
    }
    const [rows, cols] = m.shape;
    if (this.shown?.name !== t.name) {
      const data = new Float32Array(m.buffer);
      colourHeatmap(this.heatmap, state, ID);
      this.heatmap.setData({ data, width: rows, height: cols, xStride: cols, yStride: 1 });
      this.heatmap.setLabels(`error heatmap of ${t.name}`, '|a − b|', t.shape.length > 1 ? 'channel' : '—');
      const fd = t.firstDivergence;
      this.heatmap.setMarkers(fd ? [{ x: fd.index[0] ?? 0, y: fd.index[1] ?? 0, label: `first divergence ${fmtIndex(fd.index)}` }] : []);
      this.shown = { name: t.name, data, rows, cols };
      this.showDrift(t, data, rows, cols);
    }
    const fd = t.firstDivergence;
    this.divergence.textContent = fd
      ? `First divergence (|a − b| > ${t.tolerance.atol} + ${t.tolerance.rtol}·|a|): ${t.name}${fmtIndex(fd.index)}${fd.token === null ? '' : `, token ${fd.token}`}`
      : `Within tolerance everywhere (atol ${t.tolerance.atol}, rtol ${t.tolerance.rtol}); max |a − b| = ${num(t.maxAbsError)}.`;
    this.goTo.hidden = !fd || fd.token === null;
    colourHeatmap(this.heatmap, state, ID);
    this.heatmap.setCrosshair(this.rowsAreTokens() ? state.token : null, null);
  }

  /** The largest |a − b| of each row of the error map (NaN where a value is not finite), and the 512-token buckets' in the caption. */
  private showDrift(t: ComparedTensor, map: Float32Array, rows: number, cols: number): void {
    const profile = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      let worst = 0;
      for (let c = 0; c < cols; c++) worst = Math.max(worst, map[r * cols + c]);
      profile[r] = worst;
    }
    this.drift.setData(profile);
    const d = t.drift;
    if (!d) {
      this.driftCaption.textContent = `Max |a − b| of ${t.name} per ${t.shape.length > 1 ? 'row' : 'element'} along its first axis.`;
      return;
    }
    this.driftCaption.textContent = `Drift against position, ${t.name}: max |a − b| per ${DEFAULT_BUCKET} tokens ${trendText(d.map((b) => ({ start: b.start, value: b.maxAbsError })), (v) => (Number.isNaN(v) ? 'non-finite' : num(v)))}; below, each row.`;
  }

  private drawHistograms(data: PanelData, state: ViewState): void {
    const key = `${data.inspection.id}:${state.layer}:${data.model?.id ?? ''}`;
    if (key === this.histogramKey) return;
    this.histogramKey = key;
    this.histTitle.textContent = `exp(Δ·A) per precision · layer ${state.layer}`;
    const rec = data.record(state.layer);
    const delta = rec?.tensors.delta;
    const { decay, why } = rec ? decayFor(data.model, rec) : { decay: null, why: 'has no internals in this dump' };
    if (!delta || !decay) {
      this.histograms.replaceChildren(note(`Histograms need Δ of layer ${state.layer} and the model’s A: ${delta ? why : 'this dump has no Δ for this layer'}.`));
      return;
    }
    const h = decayHistograms({ shape: delta.shape, data: Float64Array.from(delta.data) }, { shape: decay.A.shape, data: Float64Array.from(decay.A.data) });
    this.histograms.replaceChildren(...histogramRows(h));
  }
}

function histogramRows(h: DecayHistograms): HTMLElement[] {
  const top = Math.max(1, ...h.histograms.flatMap((p) => p.counts));
  const axis = h.edges.length ? `log₁₀(−Δ·A) from ${h.edges[0].toFixed(1)} (decay ≈ 1) to ${h.edges[h.edges.length - 1].toFixed(1)} (decay ≈ 0)` : 'no decays below 1';
  const rows = h.histograms.map((p) => {
    const row = el('div', 'decay-histogram');
    row.dataset.precision = p.precision;
    const name = el('span', 'histogram-precision');
    name.textContent = p.precision;
    const bars = el('span', 'histogram-bars');
    for (const c of p.counts) {
      const bar = el('span', 'histogram-bar');
      bar.style.height = `${(100 * c) / top}%`;
      bar.title = String(c);
      bars.append(bar);
    }
    const counts = el('span', 'histogram-counts');
    counts.textContent = `rounds to 1: ${p.roundsToOne} · underflows to 0: ${p.underflowsToZero}`;
    row.append(name, bars, counts);
    return row;
  });
  return [note(`${h.total} decays (${h.exactOnes} with Δ·A = 0, ${h.nonFinite} not finite); x axis ${axis}.`), ...rows];
}

function finderLine(which: 'a' | 'b', file: string, f: FirstNonFinite | null): HTMLElement {
  const line = el('div', 'nonfinite-line');
  line.dataset.file = which;
  line.textContent = f
    ? `${which} (${file}): first non-finite value in ${f.layer === null ? f.quantity : `layer ${f.layer}, ${f.quantity}`}: ${f.tensor}${fmtIndex(f.index)} = ${f.value}${f.token === null ? '' : ` (token ${f.token})`}`
    : `${which} (${file}): no NaN or Inf.`;
  return line;
}

/** Errors over no finite pair are NaN, which arrives as null through the JSON message channel. */
function num(x: number | null): string {
  return typeof x === 'number' && Number.isFinite(x) ? formatValue(x) : '—';
}

function fmtIndex(index: readonly number[]): string {
  return `[${index.join(', ')}]`;
}

function note(text: string): HTMLElement {
  const p = el('p', 'view-note');
  p.textContent = text;
  return p;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.className = className;
  return e;
}

export const numericsView: ViewSpec = {
  id: ID,
  title: 'Numerics',
  area: 'main',
  empty: 'No comparison yet: run “Mamba Scope: Compare Dumps…” to compare two dumps.',
  create: (ctx) => new NumericsView(ctx),
};
