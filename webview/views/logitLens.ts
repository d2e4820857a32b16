/**
 * The logit lens (issue 16): the residual stream after each layer through the final norm and
 * lm_head, from one forward on the panel's engine (ForwardOptions.logitLens). A layers × tokens
 * heatmap of the actual next token's probability (or its rank, log-scaled) shows at which depth
 * the prediction forms; hovering a cell gives that layer's top-5 there, and the selected token
 * and layer's top-k are listed below. Computed when the view is first shown for an inspection
 * (or again with Compute), cancellable from the header.
 */
import { Unavailable } from '../analysis/layerAnalysis';
import { isLanguageModelConfig } from '../../src/engine/model/config';
import { topAt } from '../../src/engine/predictions';
import { formatPercent } from '../render/format';
import { Heatmap } from '../render/heatmap';
import type { PanelData } from '../panelData';
import type { LensResult } from '../interventions/compute';
import { actionButton, colourHeatmap, field, scaleControl, tokenLabel, vocabText, refuseLongRun } from './common';
import type { ExportSlice, View, ViewContext, ViewSpec, ViewUpdate } from './view';

const ID = 'lens';
const VALUES = { prob: 'probability of the actual next token', rank: 'rank of the actual next token (1 = top)' } as const;
type Shown = keyof typeof VALUES;

class LogitLensView implements View {
  readonly element: HTMLElement;
  private readonly values: HTMLSelectElement;
  private readonly computeButton: HTMLButtonElement;
  private readonly problem: HTMLElement;
  private readonly top: HTMLElement;
  private readonly heatmap: Heatmap;
  private drawn: { lens: LensResult; shown: Shown; values: Float32Array } | null = null;
  /** The inspection the view started a lens for, so it starts one once. */
  private startedFor: string | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'logit-lens';
    const controls = document.createElement('div');
    controls.className = 'lens-controls';
    this.values = document.createElement('select');
    this.values.className = 'lens-values';
    this.values.setAttribute('aria-label', 'Heatmap of');
    for (const [v, label] of Object.entries(VALUES)) this.values.append(new Option(label, v));
    this.values.addEventListener('change', () => this.draw());
    this.computeButton = actionButton('Compute', 'lens', () => void this.compute());
    this.problem = document.createElement('p');
    this.problem.className = 'intervention-problem';
    this.problem.setAttribute('role', 'alert');
    controls.append(field('Show', 'intervention-field', this.values), this.computeButton, scaleControl(ctx.store, ID));
    this.heatmap = new Heatmap({
      label: 'logit lens',
      xName: 'token',
      yName: 'layer',
      valueName: 'p(next)',
      xLabel: (x) => tokenLabel(ctx.data(), x),
      yLabel: (y) => `after layer ${this.drawn?.lens.layers[y] ?? y}`,
      describeCell: (x, y) => this.cellLines(x, y),
      onSelect: (x, y) => {
        const lens = this.drawn?.lens;
        if (lens) ctx.store.set({ token: x, layer: lens.layers[y] });
      },
    });
    this.top = document.createElement('p');
    this.top.className = 'lens-top';
    this.element.append(controls, this.problem, this.heatmap.element, this.top);
  }

  update({ data, state }: ViewUpdate): void {
    refuseLongRun(data, 'The logit lens and its runs');
    if (data.inspection.kind !== 'run' || !data.model || !isLanguageModelConfig(data.model.config)) {
      throw new Unavailable('The logit lens reruns the model: inspect a text with “Mamba Scope: Inspect File” (a tensor dump has no model to rerun).');
    }
    const session = this.ctx.interventions;
    this.computeButton.disabled = session.job !== null;
    const lens = session.lens?.runId === data.inspection.id ? session.lens : null;
    if (!lens && this.startedFor !== data.inspection.id && session.job === null) void this.compute();
    colourHeatmap(this.heatmap, state, ID);
    if (!lens) {
      this.drawn = null;
      this.heatmap.setData(null);
      const job = session.job;
      this.top.textContent = job?.label === 'logit lens' ? 'Computing the logit lens…' : job ? `Waiting: ${job.label} runs; press Compute when it is done.` : 'Press Compute to run the logit lens.';
      return;
    }
    if (this.drawn?.lens !== lens) this.draw();
    const y = lens.layers.indexOf(state.layer);
    this.heatmap.setCrosshair(state.token, y < 0 ? null : y);
    this.top.textContent = state.token === null || y < 0 ? 'Select a token to list each layer’s top predictions after it.' : `After layer ${state.layer}, after ${tokenLabel(data, state.token)}: ${this.topText(data, lens, y, state.token, lens.lens[y].k)}`;
  }

  private async compute(): Promise<void> {
    const data = this.ctx.data();
    if (!data) return;
    this.startedFor = data.inspection.id;
    const session = this.ctx.interventions;
    const lens = await session.start('logit lens', (c) => session.compute.lens(c)).catch((e: unknown) => {
      this.problem.textContent = e instanceof Error ? e.message : String(e);
      return undefined;
    });
    if (lens && lens.runId === this.ctx.data()?.inspection.id) {
      this.problem.textContent = '';
      session.lens = lens;
      session.changed();
    }
  }

  private draw(): void {
    const data = this.ctx.data();
    const lens = this.ctx.interventions.lens;
    if (!lens || !data) return;
    const shown = this.values.value as Shown;
    // Positions with a token after them: the last one has no next token to score.
    const T = data.inspection.length - 1;
    const values = new Float32Array(lens.layers.length * T);
    lens.lens.forEach((p, i) => {
      for (let t = 0; t < T; t++) values[i * T + t] = shown === 'prob' ? p.nextProb[t] : p.nextRank[t] + 1;
    });
    this.heatmap.setLabels(`logit lens: ${VALUES[shown]} after each layer`, shown === 'prob' ? 'p(next)' : 'rank of next', 'layer');
    this.heatmap.setData({ data: values, width: T, height: lens.layers.length, xStride: 1, yStride: T });
    this.drawn = { lens, shown, values };
  }

  private topText(data: PanelData, lens: LensResult, y: number, t: number, k: number): string {
    return topAt(lens.lens[y], t).slice(0, k).map((p) => `${vocabText(data, p.id)} ${formatPercent(p.prob)}`).join(', ');
  }

  private cellLines(x: number, y: number): string[] {
    const data = this.ctx.data();
    const lens = this.drawn?.lens;
    if (!lens || !data) return [];
    const p = lens.lens[y];
    const next = data.inspection.ids![x + 1];
    return [`next ${vocabText(data, next)}: ${formatPercent(p.nextProb[x])}, rank ${p.nextRank[x] + 1}`, `top: ${this.topText(data, lens, y, x, 5)}`];
  }

  describe() {
    return this.heatmap.describe();
  }

  snapshot(): HTMLCanvasElement {
    return this.heatmap.snapshot();
  }

  /** The heatmap as shown: [layers, tokens but the last]. */
  slice(): ExportSlice | null {
    const d = this.drawn;
    const data = this.ctx.data();
    if (!d || !data) return null;
    const T = data.inspection.length - 1;
    return {
      name: `logit-lens-${d.shown === 'prob' ? 'next-prob' : 'next-rank'}`,
      tensor: { shape: [d.lens.layers.length, T], data: d.values },
      rowLabels: d.lens.layers.map((l) => `layer ${l}`),
      columnLabels: Array.from({ length: T }, (_, t) => tokenLabel(data, t)),
    };
  }

  dispose(): void {
    this.heatmap.dispose();
  }
}

export const logitLensView: ViewSpec = {
  id: ID,
  title: 'Logit lens',
  area: 'main',
  empty: 'No inspection yet: run “Mamba Scope: Inspect File”; the logit lens then shows what each layer’s stream predicts.',
  create: (ctx) => new LogitLensView(ctx),
};
