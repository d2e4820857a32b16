/**
 * The ablation sweep (issue 16): each token's write ablated in each layer in turn (ablate-write),
 * one intervened forward per cell on the panel's engine, and a layers × tokens heatmap of the
 * effect on the outputs from the token on: the mean KL of the next-token distributions, or the
 * mean change of the next-token loss. Estimated before it starts (cells × the forward's time),
 * growing a token's column at a time as it runs, cancellable from the header (the cells done
 * stay; the export has NaN for those not run). A click on a cell selects its token and layer.
 */
import { Unavailable } from '../analysis/layerAnalysis';
import { isLanguageModelConfig } from '../../src/engine/model/config';
import { formatValue } from '../render/format';
import { Heatmap } from '../render/heatmap';
import type { PanelData } from '../panelData';
import type { SweepResult } from '../interventions/compute';
import { actionButton, colourHeatmap, field, scaleControl, tokenLabel, refuseLongRun } from './common';
import type { ExportSlice, View, ViewContext, ViewSpec, ViewUpdate } from './view';

const ID = 'sweep';
const VALUES = { kl: 'mean KL from the token on (nats)', dloss: 'mean Δloss from the token on (nats)' } as const;
type Shown = keyof typeof VALUES;

class SweepView implements View {
  readonly element: HTMLElement;
  private readonly layers: HTMLInputElement;
  private readonly tokens: HTMLInputElement;
  private readonly values: HTMLSelectElement;
  private readonly runButton: HTMLButtonElement;
  private readonly estimate: HTMLElement;
  private readonly problem: HTMLElement;
  private readonly heatmap: Heatmap;
  private drawn: { result: SweepResult; shown: Shown } | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'sweep';
    const controls = document.createElement('div');
    controls.className = 'sweep-controls';
    this.layers = textInput('sweep-layers', 'Layers swept (all, or a list and ranges like 0,2:4)', 'all');
    this.tokens = textInput('sweep-tokens', 'Tokens swept (all, or positions and ranges like 10:40)', 'all');
    for (const i of [this.layers, this.tokens]) i.addEventListener('input', () => this.showEstimate());
    this.values = document.createElement('select');
    this.values.className = 'sweep-values';
    this.values.setAttribute('aria-label', 'Heatmap of');
    for (const [v, label] of Object.entries(VALUES)) this.values.append(new Option(label, v));
    this.values.addEventListener('change', () => this.draw());
    this.runButton = actionButton('Run sweep', 'sweep', () => void this.run());
    this.estimate = document.createElement('span');
    this.estimate.className = 'sweep-estimate';
    this.problem = document.createElement('p');
    this.problem.className = 'intervention-problem';
    this.problem.setAttribute('role', 'alert');
    controls.append(field('Layers', 'intervention-field', this.layers), field('Tokens', 'intervention-field', this.tokens), this.runButton, this.estimate, field('Show', 'intervention-field', this.values), scaleControl(ctx.store, ID));
    this.heatmap = new Heatmap({
      label: 'ablation sweep',
      xName: 'token',
      yName: 'layer',
      valueName: 'mean KL',
      xLabel: (x) => tokenLabel(ctx.data(), this.drawn?.result.tokens[x] ?? x),
      yLabel: (y) => `layer ${this.drawn?.result.layers[y] ?? y}`,
      describeCell: (x, y) => this.cellLines(x, y),
      onSelect: (x, y) => {
        const r = this.drawn?.result;
        if (r) ctx.store.set({ token: r.tokens[x], layer: r.layers[y] });
      },
    });
    this.element.append(controls, this.problem, this.heatmap.element);
  }

  update({ data, state }: ViewUpdate): void {
    refuseLongRun(data, 'Sweeps');
    if (data.inspection.kind !== 'run' || !data.model || !isLanguageModelConfig(data.model.config)) {
      throw new Unavailable('The sweep reruns the model: inspect a text with “Mamba Scope: Inspect File” (a tensor dump has no model to rerun).');
    }
    this.runButton.disabled = this.ctx.interventions.job !== null;
    this.showEstimate();
    colourHeatmap(this.heatmap, state, ID);
    const r = this.ctx.interventions.sweep;
    if (r && r.runId === data.inspection.id) {
      if (this.drawn?.result !== r) this.draw();
      const x = state.token === null ? -1 : r.tokens.indexOf(state.token), y = r.layers.indexOf(state.layer);
      this.heatmap.setCrosshair(x < 0 ? null : x, y < 0 ? null : y);
    } else {
      this.drawn = null;
      this.heatmap.setData(null);
    }
  }

  /** The cells the fields name, or one line saying what is wrong. */
  private cells(data: PanelData): { layers: number[]; tokens: number[] } {
    const config = data.model!.config;
    const nLayer = isLanguageModelConfig(config) ? config.nLayer : 1;
    return { layers: positions(this.layers.value, nLayer, 'layer'), tokens: positions(this.tokens.value, data.inspection.length, 'token') };
  }

  private showEstimate(): void {
    const data = this.ctx.data();
    if (!data) return;
    try {
      const { layers, tokens } = this.cells(data);
      const n = layers.length * tokens.length;
      const ms = this.ctx.interventions.compute.forwardMs;
      this.estimate.textContent = ms === null
        ? `${n} cells: ${n + 1} forwards`
        : `${n} cells: at most about ${formatSeconds(((n + 1) * ms) / 1000)} (${n + 1} forwards of ${Math.round(ms)} ms; the native engine batches them)`;
      this.problem.textContent = '';
    } catch (e) {
      this.estimate.textContent = '';
      this.problem.textContent = e instanceof Error ? e.message : String(e);
    }
  }

  private async run(): Promise<void> {
    const data = this.ctx.data();
    if (!data) return;
    let cells: { layers: number[]; tokens: number[] };
    try {
      cells = this.cells(data);
    } catch (e) {
      this.problem.textContent = e instanceof Error ? e.message : String(e);
      return;
    }
    const session = this.ctx.interventions;
    const runId = data.inspection.id;
    await session.start('sweep', (c) => session.compute.sweep(cells.layers, cells.tokens, c, (partial) => {
      if (partial.runId !== runId) return;
      session.sweep = partial;
      session.changed();
    })).catch((e: unknown) => {
      this.problem.textContent = e instanceof Error ? e.message : String(e);
    });
  }

  private draw(): void {
    const r = this.ctx.interventions.sweep;
    if (!r) return;
    const shown = this.values.value as Shown;
    const values = shown === 'kl' ? r.meanKl : r.meanDLoss;
    const how = r.batched ? 'batched on the GPU' : 'one forward per cell';
    this.heatmap.setLabels(`ablation sweep: ${VALUES[shown]}, ${r.done} of ${r.layers.length * r.tokens.length} cells (${how})`, shown === 'kl' ? 'mean KL' : 'mean Δloss', 'layer');
    // Only the tokens whose every layer is done: a cell not run yet is not a NaN to flag.
    this.heatmap.setData({ data: values, width: r.columns, height: r.layers.length, xStride: 1, yStride: r.tokens.length });
    this.drawn = { result: r, shown };
  }

  private cellLines(x: number, y: number): string[] {
    const r = this.drawn?.result;
    if (!r) return [];
    const k = y * r.tokens.length + x;
    return [`ablate-write layer=${r.layers[y]} tokens=${r.tokens[x]}`, `mean KL ${formatValue(r.meanKl[k])} · mean Δloss ${formatValue(r.meanDLoss[k])}`];
  }

  describe() {
    return this.heatmap.describe();
  }

  snapshot(): HTMLCanvasElement {
    return this.heatmap.snapshot();
  }

  /** The whole sweep of the chosen value, [layers, tokens]: a cancelled sweep's cells not run are NaN. */
  slice(): ExportSlice | null {
    const d = this.drawn;
    const data = this.ctx.data();
    if (!d || !data) return null;
    return {
      name: `sweep-${d.shown === 'kl' ? 'mean-kl' : 'mean-dloss'}`,
      tensor: { shape: [d.result.layers.length, d.result.tokens.length], data: Float32Array.from(d.shown === 'kl' ? d.result.meanKl : d.result.meanDLoss) },
      rowLabels: d.result.layers.map((l) => `layer ${l}`),
      columnLabels: d.result.tokens.map((t) => tokenLabel(data, t)),
    };
  }

  dispose(): void {
    this.heatmap.dispose();
  }
}

/** "all", or positions and start:end ranges (end exclusive), each in [0, count). */
function positions(text: string, count: number, what: string): number[] {
  const s = text.trim();
  if (s === '' || s === 'all') return Array.from({ length: count }, (_, i) => i);
  const out = new Set<number>();
  for (const item of s.split(',')) {
    const m = /^\s*(\d+)\s*(?::\s*(\d+)\s*)?$/.exec(item);
    if (!m) throw new Error(`“${item}” is not a ${what} or a start:end range`);
    const [a, b] = [Number(m[1]), m[2] === undefined ? Number(m[1]) + 1 : Number(m[2])];
    if (b <= a || b > count) throw new Error(`${what}s ${item} are not within 0…${count - 1}`);
    for (let i = a; i < b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

function formatSeconds(s: number): string {
  return s < 90 ? `${Math.ceil(s)} s` : `${Math.ceil(s / 60)} min`;
}

function textInput(className: string, label: string, value: string): HTMLInputElement {
  const i = document.createElement('input');
  i.type = 'text';
  i.className = className;
  i.value = value;
  i.setAttribute('aria-label', label);
  return i;
}

export const sweepView: ViewSpec = {
  id: ID,
  title: 'Sweep',
  area: 'main',
  empty: 'No inspection yet: run “Mamba Scope: Inspect File”, then sweep: each token’s write ablated in each layer, and what it changes downstream.',
  create: (ctx) => new SweepView(ctx),
};
