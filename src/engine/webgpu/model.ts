/**
 * A model on the native WebGPU engine behind the ForwardOptions every engine takes, for the
 * panel's `webgpu` backend and `mamba-scope inspect --backend webgpu`: weights uploaded once,
 * pipelines compiled once, and the forward plans of the last run's lengths and captures kept (one
 * for a forward, the chunk plans for a long run), so re-running a sample costs its submits and one
 * readback, not the plans' buffers (160–220 ms for a long run's two 2,049-token plans of the
 * mamba-130m shape on the H200, against 500 ms of GPU work). The float64 reference forward
 * (../reference/forward.ts) is the oracle it is tested against.
 */
import { INTERNAL_NAMES, type ForwardOptions, type ForwardResult } from '../internals';
import type { LayerCarry } from '../layers/kind';
import type { LoadedModel } from '../model/graph';
import type { StreamedModel } from '../model/load';
import { editsKey } from './edits';
import { nativeForward } from './forward';
import { webgpuLogitLens } from './logitLens';
import type { PipelineCache } from './kernel';
import { CAPTURE_NAMES, type CaptureName } from './layer';
import { createForwardPlan, writeCarries, type ForwardPlan, type ForwardPlanOptions } from './plan';
import type { WeightFormat } from './weightFormat';
import { requireStateCarried, uploadWeights, type GpuWeights } from './weights';

export interface WebGpuModelOptions {
  /** A CPU implementation (SwiftShader): see ForwardPlanOptions.software. */
  readonly software: boolean;
  /** How the projections are stored (default f32: weightFormat.ts, and the accuracy in docs/PERFORMANCE.md). */
  readonly weights?: WeightFormat;
}

export class WebGpuModel {
  /** Pipelines compiled by the model's plans, shared by all of them (the sweep's too). */
  readonly pipelines: PipelineCache = new Map();
  private last: { key: string; plans: ForwardPlan[] } | null = null;

  private constructor(readonly weights: GpuWeights, private readonly options: WebGpuModelOptions) {}

  /** A streamed model is read from its source a layer at a time as it uploads (weights.ts). */
  static async upload(device: GPUDevice, model: LoadedModel<'float32'> | StreamedModel<'float32'>, options: WebGpuModelOptions): Promise<WebGpuModel> {
    return new WebGpuModel(await uploadWeights(device, model, options.weights), options);
  }

  get config() {
    return this.weights.config;
  }

  /** Whether the device is a CPU implementation (its plans use the software kernels). */
  get software(): boolean {
    return this.options.software;
  }

  /**
   * The forward with ForwardOptions' meaning: the kept internals of the kept layers, and the
   * top-k predictions when `predictions` is set, else the [L, V] logits. It runs as one submit:
   * `checkCancelled` is asked before it starts and before the results are copied out. `carries`:
   * the state and conv context each layer enters the sequence with (a chunk of a long run
   * continuing the one before; a layer's absent carry is zeros), carried in by the plan.
   */
  async forward(ids: ArrayLike<number>, options: ForwardOptions = {}, carries?: readonly (LayerCarry | undefined)[]): Promise<ForwardResult<Float32Array>> {
    const L = ids.length;
    if (carries) requireStateCarried(this.weights);
    const layers = options.layers ?? Array.from({ length: this.config.nLayer }, (_, i) => i);
    // The attention pattern is O(L²): only when asked for, as on the other engines.
    const kept = (options.keep ?? INTERNAL_NAMES).filter((q): q is CaptureName => (CAPTURE_NAMES as readonly string[]).includes(q) && (q !== 'attn_pattern' || !!options.attentionPattern));
    // The logit lens reads each kept layer's output stream: captured for it, and left out of the result when not kept.
    const lensOnly = !!options.logitLens && !kept.includes('hidden_out');
    const quantities: CaptureName[] = lensOnly ? [...kept, 'hidden_out'] : kept;
    const planOptions: ForwardPlanOptions = {
      tokens: L,
      // Without `predictions` the caller wants the logits; a top-1 is the least the head computes.
      k: options.predictions ?? 1,
      logits: options.predictions === undefined,
      capture: { layers, quantities },
      statesAt: options.statesAt ?? [],
      software: this.options.software,
      pipelines: this.pipelines,
      ...(options.edits?.size ? { edits: options.edits } : {}),
      ...(carries ? { carryIn: true } : {}),
    };
    options.checkCancelled?.();
    const [plan] = await this.plansFor([planOptions]);
    if (carries) writeCarries(plan, carries);
    const result = await nativeForward(plan, ids);
    options.checkCancelled?.();
    const lens = options.logitLens
      ? await webgpuLogitLens(this.weights, ids, result.layers.map((l) => l.tensors.hidden_out!.data), { k: options.logitLens, software: this.options.software, pipelines: this.pipelines, checkCancelled: options.checkCancelled })
      : undefined;
    const byLayer = new Map(result.layers.map((l, i) => {
      const { hidden_out, ...rest } = l.tensors;
      return [l.layer, { ...l, tensors: lensOnly ? rest : l.tensors, ...(lens ? { lens: lens[i] } : {}) }];
    }));
    return {
      ...(result.logits ? { logits: result.logits } : {}),
      ...(options.predictions !== undefined ? { predictions: result.predictions } : {}),
      // In the order asked for, as the other engines return them.
      layers: layers.map((layer) => byLayer.get(layer) ?? { layer, tensors: {} }),
    };
  }

  /**
   * Plans for these options: the last call's when they match, else new ones (the old ones are
   * freed first: plans hold the activations). One slot for the model: a forward and a long run
   * (webgpuLongRun) evict each other's plans, so neither may start while the other is still
   * reading its results (the panel and the CLI run one at a time on a model). A plan's carryIn
   * keeps what was last written or copied into it: whoever reuses one with carryIn writes its
   * carries first.
   */
  async plansFor(options: readonly ForwardPlanOptions[]): Promise<ForwardPlan[]> {
    // The edits' values are uploaded with the plan: a plan of other edits is another plan.
    const key = options.map(({ pipelines: _, edits, ...described }) => JSON.stringify(described) + editsKey(edits)).join('\n');
    if (this.last?.key === key) return this.last.plans;
    this.last?.plans.forEach((p) => p.destroy());
    this.last = null;
    const plans: ForwardPlan[] = [];
    try {
      for (const o of options) plans.push(await createForwardPlan(this.weights, o));
    } catch (e) {
      plans.forEach((p) => p.destroy());
      throw e;
    }
    this.last = { key, plans };
    return plans;
  }

  dispose(): void {
    this.last?.plans.forEach((p) => p.destroy());
    this.last = null;
    this.weights.destroy();
  }
}
