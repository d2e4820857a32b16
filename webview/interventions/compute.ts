/**
 * The panel's causal runs (issue 16) on its own engine: an intervention against the clean run,
 * the ablation sweep, the logit lens and the causal check of a forgotten token. Every engine
 * applies the interventions itself (ForwardOptions.edits, resolved by layerEdits).
 *
 * Memory: the effect needs the full next-token distributions (KL over the vocabulary), which the
 * panel's own run does not keep (it asks the engine for top-k predictions). The clean run's
 * [L, V] logits are computed once per inspection and kept while interventions run on it; each
 * intervened run's logits are reduced at once (KL, Δloss, the target's probability, the top-k) and
 * let go. So a run holds two [L, V] float32 tensors at its peak: 824 MB at 2048 tokens × 50k
 * vocabulary, refused with numbers when that does not fit beside the shown run's internals.
 * Reducing them in blocks of positions would need the engines to hand out the logits in blocks;
 * they return them whole, so the whole tensor is the peak whatever the panel does with it.
 */
import { interventionEffect, type Effect } from '../../src/engine/analysis/effect';
import { CancelledError, LimitError, MambaScopeError } from '../../src/engine/errors';
import type { ForwardOptions } from '../../src/engine/internals';
import { describeIntervention, layerEdits, type Intervention, type InterventionInputs } from '../../src/engine/interventions';
import { editedModel } from '../../src/engine/interventionInputs';
import { isLanguageModelConfig } from '../../src/engine/model/config';
import { predictionsFromLogits, type Predictions } from '../../src/engine/predictions';
import { webgpuAblationSweep } from '../../src/engine/webgpu/sweep';
import type { Tensor } from '../../src/engine/tensor';
import { FULL_RESOLUTION_TOKENS, type Progress, type RequestContext, type RunParams } from '../../src/protocol';
import type { AblationSweep } from '../../src/engine/analysis/sweep';
import { mb, type ComputeSession } from '../compute';
import { NEXT_TOKEN_K, type ModelContext } from '../inspection';
import type { PanelData } from '../panelData';

/** The inspection the runs start from: the host's run request and what the panel shows of it. */
export interface CurrentRun {
  readonly params: RunParams;
  readonly data: PanelData;
  /** The inspection's own forward time (it also kept the internals: at least what a forward for logits takes). */
  readonly forwardMs: number;
}

/** One intervention's effect on the outputs, against the clean run. */
export interface InterventionOutcome {
  readonly runId: string;
  /** The interventions as their one-line specs (docs/INTERVENTIONS.md). */
  readonly specs: readonly string[];
  /** Positions the interventions act on (their tokens), for the strip to mark. */
  readonly positions: readonly number[];
  readonly effect: Effect;
  /** The intervened run's top-k and the actual next token's probability and rank. */
  readonly predictions: Predictions;
  readonly forwardMs: number;
}

/** Each token × each layer ablated (ablate-write): the mean KL and Δloss of the outputs from the token on. */
export interface SweepResult extends AblationSweep {
  readonly runId: string;
  /** Cells computed; fewer than all when cancelled part way (the rest are NaN). */
  readonly done: number;
  /** The first `columns` tokens have every layer's cell: what the heatmap shows. */
  readonly columns: number;
  /** Run by the native engine's batched sweep on the GPU, rather than one forward per cell. */
  readonly batched: boolean;
}

/** The logit lens: each layer's output stream through the final norm and lm_head. */
export interface LensResult {
  readonly runId: string;
  readonly layers: readonly number[];
  /** Per layer (in `layers` order): top-k and the next token's probability and rank at every position. */
  readonly lens: readonly Predictions[];
}

/** Reads, through the host, what the interventions need from files (steer vectors, patch-state dumps). */
export type ReadInputs = (interventions: readonly Intervention[], run: CurrentRun) => Promise<InterventionInputs>;

/** A RequestContext for a run the panel starts itself (its progress bar and Cancel button). */
export function localContext(signal: AbortSignal, progress: (p: Progress) => void): RequestContext {
  return {
    signal,
    progress,
    throwIfCancelled: () => {
      if (signal.aborted) throw new CancelledError('intervention');
    },
  };
}

/** The loaded model's language-model config, or one line saying interventions need one. */
function languageConfig(model: ModelContext) {
  if (!isLanguageModelConfig(model.config)) throw new MambaScopeError('unsupported', model.name, 'is a single block without tokens: interventions need a language model');
  return model.config;
}

/** Positions an intervention acts on (none for ablate-path: every position). */
function positionsOf(i: Intervention, L: number): number[] {
  const at = (t: number) => (t < 0 ? L + t : t);
  switch (i.kind) {
    case 'zero-state':
    case 'patch-state': return [at(i.token)];
    case 'knockout': return [at(i.from)];
    case 'ablate-path': return [];
    default: return i.tokens.map(at);
  }
}

export class InterventionCompute {
  /** The clean run's [L, V] logits, for the inspection they belong to. */
  private clean: { runId: string; logits: Tensor<Float32Array>; forwardMs: number } | null = null;

  constructor(private readonly session: ComputeSession, private readonly current: () => CurrentRun | null, private readonly readInputs: ReadInputs) {}

  /** Milliseconds of a forward: the clean one for logits once timed, before that the inspection's own. */
  get forwardMs(): number | null {
    return this.clean?.forwardMs ?? this.current()?.forwardMs ?? null;
  }

  /** Lets go of the clean logits (a new inspection is shown: they belong to the old one). */
  forget(): void {
    this.clean = null;
  }

  /** The inspection shown, or one line saying there is none (a dump has no model run to intervene on). */
  run(): CurrentRun {
    const r = this.current();
    if (!r) throw new MambaScopeError('bad-input', 'interventions', `need an inspection of the loaded model of at most ${FULL_RESOLUTION_TOKENS} tokens: run “Mamba Scope: Inspect File” first, or inspect a selection of a long text (a dump has no model to rerun)`);
    return r;
  }

  /** The intervention's effect on every position's next-token distribution, against the clean run. */
  async effect(interventions: readonly Intervention[], target: number | undefined, ctx: RequestContext): Promise<InterventionOutcome> {
    const r = this.run();
    this.checkLogitsFit(r, 'an intervention');
    const needsFiles = interventions.some((i) => i.kind === 'steer' || i.kind === 'patch-state');
    const edits = this.edits(r, interventions, needsFiles ? await this.readInputs(interventions, r) : new Map());
    const clean = await this.cleanLogits(r, ctx);
    const { logits, forwardMs } = await this.logits(r, { edits }, ctx);
    const ids = r.data.inspection.ids!;
    const effect = interventionEffect(clean, logits, ids, target);
    const L = ids.length;
    return {
      runId: r.params.runId,
      specs: interventions.map(describeIntervention),
      positions: [...new Set(interventions.flatMap((i) => positionsOf(i, L)))].sort((a, b) => a - b),
      effect,
      predictions: predictionsFromLogits(logits, ids, NEXT_TOKEN_K),
      forwardMs,
    };
  }

  /**
   * Cells (layer, token) ablated: on the native WebGPU engine by its batched sweep, elsewhere one
   * intervened forward each, token by token, `onCell` after each token's column with the result
   * so far (the heatmap grows as it runs; cancelling keeps what was done).
   */
  async sweep(layers: readonly number[], tokens: readonly number[], ctx: RequestContext, onCell: (partial: SweepResult) => void): Promise<SweepResult> {
    const r = this.run();
    const ids = r.data.inspection.ids!;
    const cells = layers.length * tokens.length;
    // The native engine sweeps in batches on the GPU, its logits kept there (webgpuAblationSweep).
    const batched = await this.session.onNativeEngine(r.params.modelId, r.params.settings.backend, ctx, (model) =>
      webgpuAblationSweep(model, ids, { layers, tokens, checkCancelled: ctx.throwIfCancelled, onProgress: (done) => ctx.progress({ stage: 'sweep on the GPU', done, total: cells }) }));
    if (batched) {
      const result = { runId: r.params.runId, layers, tokens, meanKl: batched.meanKl, meanDLoss: batched.meanDLoss, done: cells, columns: tokens.length, batched: true };
      onCell(result);
      return result;
    }
    this.checkLogitsFit(r, 'the sweep');
    const clean = await this.cleanLogits(r, ctx);
    const meanKl = new Float64Array(cells).fill(NaN), meanDLoss = new Float64Array(cells).fill(NaN);
    const result = (done: number): SweepResult => ({ runId: r.params.runId, layers, tokens, meanKl, meanDLoss, done, columns: Math.floor(done / layers.length), batched: false });
    const model = editedModel(languageConfig(r.data.model!));
    let done = 0;
    const start = performance.now();
    // Token by token, every layer of a token before the next: the heatmap grows a whole column at a time.
    for (const [j, s] of tokens.entries()) {
      for (const [i, layer] of layers.entries()) {
        ctx.throwIfCancelled();
        const edits = layerEdits([{ kind: 'ablate-write', layer, tokens: [s] }], ids.length, model);
        const { logits } = await this.logits(r, { edits }, ctx, false);
        const e = interventionEffect(clean, logits, ids);
        meanKl[i * tokens.length + j] = meanFrom(e.kl, s);
        meanDLoss[i * tokens.length + j] = meanFrom(e.dLoss, s);
        done++;
        const left = ((performance.now() - start) / done) * (cells - done);
        ctx.progress({ stage: `token ${s}, layer ${layer} (about ${Math.ceil(left / 1000)} s left)`, done, total: cells });
      }
      onCell(result(done));
    }
    return result(done);
  }

  /** Each layer's output stream through the final norm and lm_head: top-k and the next token's probability and rank. */
  async lens(ctx: RequestContext): Promise<LensResult> {
    const r = this.run();
    const ids = r.data.inspection.ids!;
    const { result } = await this.session.forward(r.params.modelId, r.params.settings.backend, ids, { keep: [], predictions: NEXT_TOKEN_K, logitLens: NEXT_TOKEN_K, checkCancelled: ctx.throwIfCancelled }, ctx);
    const missing = result.layers.find((l) => !l.lens);
    if (missing || result.layers.length === 0) {
      const native = this.session.engine === 'webgpu-native';
      throw new MambaScopeError('unsupported', native ? 'the native WebGPU engine' : 'the tfjs engine', `returns no logit lens (ForwardOptions.logitLens) for layer ${missing?.layer ?? 0}${native ? ': the tfjs backends have it (mambaScope.backend: webgl or wasm)' : ''}`);
    }
    return { runId: r.params.runId, layers: result.layers.map((l) => l.layer), lens: result.layers.map((l) => l.lens!) };
  }

  /** Mean KL of the outputs from `from` on when token `token`'s write is ablated in `layer` (the causal check of a forgotten token). */
  async ablatedMeanKl(layer: number, token: number, from: number, ctx: RequestContext): Promise<number> {
    const outcome = await this.effect([{ kind: 'ablate-write', layer, tokens: [token] }], undefined, ctx);
    return meanFrom(outcome.effect.kl, from);
  }

  private edits(r: CurrentRun, interventions: readonly Intervention[], inputs: InterventionInputs) {
    const model = r.data.model;
    if (!model || model.id !== r.params.modelId) throw new MambaScopeError('bad-input', 'interventions', 'the panel holds another model than this inspection’s: inspect again');
    return layerEdits(interventions, r.data.inspection.length, editedModel(languageConfig(model)), inputs);
  }

  /** Refuses, before any work, a run whose two [L, V] logits would not fit beside the shown run's internals. */
  private checkLogitsFit(r: CurrentRun, what: string): void {
    const config = r.data.model!.config;
    if (!isLanguageModelConfig(config)) return;
    const L = r.data.inspection.length;
    const need = 2 * L * config.vocabSize * Float32Array.BYTES_PER_ELEMENT;
    const spare = this.session.spareBytes(r.params.modelId, L, r.params.settings.memoryLimitMB, r.data.keptBytes);
    if (need > spare.bytes) {
      throw new LimitError(what, `needs the clean and the intervened next-token distributions, 2 × ${L} tokens × ${config.vocabSize} × 4 bytes = ${mb(need)} MB, and ${mb(Math.max(0, spare.bytes))} MB are left of ${spare.why} beside the ${mb(r.data.keptBytes)} MB the inspection keeps: ${spare.way} inspect a shorter selection`);
    }
  }

  private async cleanLogits(r: CurrentRun, ctx: RequestContext): Promise<Tensor<Float32Array>> {
    if (this.clean?.runId !== r.params.runId) {
      this.clean = null; // the last inspection's go first
      const { logits, forwardMs } = await this.logits(r, {}, ctx);
      this.clean = { runId: r.params.runId, logits, forwardMs };
    }
    return this.clean.logits;
  }

  /** A forward keeping no internals, for its [L, V] logits. */
  private async logits(r: CurrentRun, options: ForwardOptions, ctx: RequestContext, report = true): Promise<{ logits: Tensor<Float32Array>; forwardMs: number }> {
    const quiet: RequestContext = report ? ctx : { ...ctx, progress: () => undefined };
    const { result, forwardMs } = await this.session.forward(r.params.modelId, r.params.settings.backend, r.data.inspection.ids!, { ...options, layers: [], checkCancelled: ctx.throwIfCancelled }, quiet);
    if (!result.logits) throw new MambaScopeError('unsupported', r.data.model!.name, 'gave no logits: interventions need a language model');
    return { logits: result.logits, forwardMs };
  }
}

/** Mean of x from index `from` on (0 when nothing is left). */
export function meanFrom(x: Float64Array, from: number): number {
  if (x.length <= from) return 0;
  let sum = 0;
  for (let i = from; i < x.length; i++) sum += x[i];
  return sum / (x.length - from);
}
