/**
 * What a layer kind's WebGPU entry (layers/<kind>/webgpu.ts) works with: how its weights are
 * uploaded, the plan context its dispatches are built in, and where each internal it can
 * capture lives. The steps every mixer shares (the pre-norm, the scan's scratch, out_proj into
 * the residual stream) are here, so a kind's entry lists only what is its own.
 */
import type { LayerEdit, ScanEdit, StatePatch } from '../interventions';
import type { ScanGeometry } from './scanShaders';
import type { Param } from '../model/params';
import type { BufferRange, Dispatch } from './kernel';
import { matmulDispatches, type MatmulOptions, type MatmulScratch } from './matmul';
import { planeRange, type PlaneLayout } from './planes';
import { combineDispatch } from './elementwise';
import { rmsNormKernel, rmsNormWorkgroups } from './rmsNorm';
import { scanChunking, scanScratch } from './selectiveScan';
import type { WeightFormat } from './weightFormat';

/** The internals a plan can copy out, with the names and shapes of ../internals.ts. */
export const CAPTURE_NAMES = ['hidden_in', 'z', 'u', 'delta', 'B', 'C', 'y', 'h', 'conv_state', 'out', 'hidden_out', 'ssm_out', 'attn_out', 'attn_pattern', 'mlp_out', 'moe_experts', 'moe_weights'] as const;
export type CaptureName = (typeof CAPTURE_NAMES)[number];

export interface CaptureSource {
  readonly range: Required<BufferRange>;
  readonly shape: readonly number[];
}

/**
 * A Mamba mixer's state entering the sequence (LayerContext.carryIn): the scan's state "after
 * token −1" ([channels, N], as the state captures hold it) and the conv's context before token 0
 * ([K − 1, conv channels], oldest first, as the conv_state captures hold it): the reference's
 * LayerCarry. Zero when the plan is built.
 */
export interface CarryIn {
  readonly h: Required<BufferRange>;
  readonly conv: Required<BufferRange>;
}

export interface LayerBuild {
  readonly dispatches: readonly Dispatch[];
  /** Where each internal is once the layer's dispatches ran ('h', 'conv_state' and 'out' only when the layer was asked for them). */
  readonly sources: Readonly<Partial<Record<CaptureName, CaptureSource>>>;
  /** The layer's carried-in state, when the plan has one (ForwardPlanOptions.carryIn) and the layer a scan. */
  readonly carryIn?: CarryIn;
}

/** A Mamba mixer's dispatches on its input, up to out_proj, which its caller runs (into the residual, or into a hybrid branch's sum). */
export interface GpuMixer {
  readonly dispatches: readonly Dispatch[];
  /** z, u, delta, B, C, y, and h and conv_state when the scan writes states. */
  readonly sources: Readonly<Partial<Record<CaptureName, CaptureSource>>>;
  /** out_proj's input, the element where its [L, K] rows start, and K. */
  readonly outProjInput: { readonly input: GPUBuffer; readonly aOffset: number; readonly K: number };
  /** Its state entering the sequence, when the plan carries one in. */
  readonly carryIn?: CarryIn;
}

/** How a kind's entry puts its weights on the device (weights.ts). */
export interface GpuUploader {
  /** An f32 storage buffer holding `data`. */
  upload(label: string, data: ArrayLike<number>): GPUBuffer;
  /** A projection's weight matrix in the model's WeightFormat (matmuls read it with MatmulOptions.weights). */
  projection(label: string, data: ArrayLike<number>): GPUBuffer;
  /** The parameter's buffer, or undefined when the checkpoint has none (an optional bias). */
  optional(label: string, p: Param<'float32'> | undefined): GPUBuffer | undefined;
  /** [A | D] for the scan: A = −exp(A_log) in float64, rounded once. */
  scanParams(label: string, aLog: Param<'float32'>, D: Param<'float32'>): GPUBuffer;
}

/** What both Mamba mixers keep on the device: in_proj, conv1d, the scan's [A | D] and out_proj. */
export interface MixerGpuWeights {
  readonly inProjW: GPUBuffer;
  readonly inProjB?: GPUBuffer;
  readonly convW: GPUBuffer;
  readonly convB?: GPUBuffer;
  /** [A | D] for the scan. */
  readonly scanParams: GPUBuffer;
  readonly outProjW: GPUBuffer;
  readonly outProjB?: GPUBuffer;
}

type F32 = Param<'float32'>;

/** What both Mamba layer kinds have, under their parameter names. */
export interface MixerParams {
  readonly inProjW: F32;
  readonly inProjB?: F32;
  readonly convW: F32;
  readonly convB?: F32;
  readonly A_log: F32;
  readonly D: F32;
  readonly outProjW: F32;
  readonly outProjB?: F32;
}

/** Uploads what both mixers have, under their parameter names. */
export function uploadMixer(p: MixerParams, up: GpuUploader): MixerGpuWeights {
  return {
    inProjW: up.projection('in_proj', p.inProjW.data),
    inProjB: up.optional('in_proj bias', p.inProjB),
    convW: up.upload('conv1d', p.convW.data),
    convB: up.optional('conv1d bias', p.convB),
    scanParams: up.scanParams('A|D', p.A_log, p.D),
    outProjW: up.projection('out_proj', p.outProjW.data),
    outProjB: up.optional('out_proj bias', p.outProjB),
  };
}

/** One layer's place in a plan: the residual stream it reads and writes, and what is captured from it. */
export interface LayerIo {
  readonly index: number;
  readonly hIn: GPUBuffer;
  readonly hOut: GPUBuffer;
  /** The scan writes the states (and the conv its conv_state) at the plan's statesAt positions. */
  readonly states: boolean;
  /** The mixer output is kept apart from the residual add. */
  readonly out: boolean;
  /** An attention layer writes its [L, heads, L] pattern (attn_pattern). */
  readonly pattern: boolean;
  /** The embedding output [L, H], for a layer that reads it (Zamba2's shared block); undefined when no layer of the model does. */
  readonly embeddings?: GPUBuffer;
  /** Its interventions (edits.ts); steering is applied by the plan, before hIn reaches the layer. */
  readonly edit?: LayerEdit;
}

export interface LayerContext extends MatmulScratch {
  readonly L: number;
  /** Tokens per scan chunk (≥ L: the fused single pass). */
  readonly chunkLen: number;
  /** A CPU implementation: kernels run without workgroup barriers (kernel.ts: cooperativeThreads). */
  readonly software: boolean;
  /** How the projections are stored (GpuUploader.projection). */
  readonly weights: WeightFormat;
  /** Sorted, distinct positions whose states the plan captures (empty: none). */
  readonly statesAt: Int32Array;
  /** Each Mamba mixer starts from a state of the plan's own (CarryIn), not from zero. */
  readonly carryIn: boolean;
  /** A storage buffer of `elements` f32 owned by the plan. */
  allocate(label: string, elements: number): GPUBuffer;
  /** A storage buffer owned by the plan holding `data` (tables computed on the host: RoPE's angles). */
  constant(label: string, data: Float32Array<ArrayBuffer>): GPUBuffer;
  /**
   * What layers of one kind share within a plan (activations, scan scratch: they run one after
   * another), made by the first layer that asks. `owner` names the sharing (the kind's entry), and
   * `key` tells apart what it shares among layers of different shapes (a hybrid's operations).
   */
  shared<T>(owner: object, make: () => T, key?: string): T;
  /**
   * The scan's Params: the layer's [A | D] itself, or, for a scan that writes states, is edited or
   * starts from a carried-in state, a copy with one slot per token after it (the statesAt index,
   * or −1), then the edit words (scanShaders.ts: editWords), then the initial state (`stateSize`
   * words, zero; `initial` is where they are), then a patch-state's token and state (patch.ts;
   * `patched`: the scan reads them).
   */
  scanParams(params: GPUBuffer, aAndD: number, use: { readonly states: boolean; readonly scan?: ScanEdit; readonly stateSize: number; readonly patch?: StatePatch }): { readonly params: GPUBuffer; readonly initial?: Required<BufferRange>; readonly patched?: boolean };
}

/** What a layer kind runs on WebGPU: G is its weights on the device. */
export interface WebGpuEntry<C, P, G> {
  upload(c: C, p: P, up: GpuUploader): G;
  build(c: C, w: G, io: LayerIo, ctx: LayerContext): LayerBuild;
  /** Whether the layer reads the embedding output (LayerIo.embeddings; Zamba2's shared block); none by default. */
  readsEmbeddings?(c: C): boolean;
  /**
   * Whether the layer's output from a token c on depends on the tokens before c only through its
   * CarryIn (a Mamba mixer's h and conv context; per-token operations need none), so a plan of the
   * tokens from c with the carries written continues the sequence. Attention, which reads every
   * key before c, has not. None by default.
   */
  stateCarried?(c: C): boolean;
}

export const whole = (buffer: GPUBuffer, elements: number): Required<BufferRange> => ({ buffer, offset: 0, size: 4 * elements });
export const plane = (buffer: GPUBuffer, layout: PlaneLayout, p: number) => planeRange(buffer, layout, p) as Required<BufferRange>;

/** The scan's scratch buffers (chunk ends and carried states; none for a single chunk). */
export function scanScratchBuffers(ctx: LayerContext, g: ScanGeometry) {
  const chunking = scanChunking(ctx.L, ctx.chunkLen);
  const s = scanScratch(g, chunking);
  return {
    chunking,
    ends: s.ends ? { buffer: ctx.allocate('scan chunk ends', s.ends) } : undefined,
    carried: s.carried ? { buffer: ctx.allocate('scan carried states', s.carried) } : undefined,
  };
}

/**
 * Buffers for one layer's intermediates (a hybrid layer's: each step writes a new one): the n-th
 * request of a layer reuses the n-th buffer of an earlier layer of the same size, since layers run
 * one after another and each layer's captures are copied out before the next layer runs.
 */
export type LayerScratch = (label: string, elements: number) => GPUBuffer;

export function layerScratch(ctx: LayerContext, owner: object): LayerScratch {
  let n = 0;
  return (label, elements) => ctx.shared(owner, () => ctx.allocate(label, elements), `${n++}:${elements}`);
}

export interface Projection {
  /** Its input [M, K] from element `aOffset` (default 0). */
  readonly x: GPUBuffer;
  readonly aOffset?: number;
  readonly weight: GPUBuffer;
  readonly bias?: GPUBuffer;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly out: GPUBuffer;
  /** Added to the output (a plain [M, N] tensor). */
  readonly residual?: GPUBuffer;
  /** Output column planes (default one of width N). */
  readonly planes?: readonly number[];
}

/** x · Wᵀ (+ bias) (+ residual) into `out`: a linear layer in the model's weight format. */
export function projectionDispatches(ctx: LayerContext, label: string, p: Projection): Dispatch[] {
  return matmulDispatches(ctx, label, { bias: !!p.bias, softplus: false, residual: !!p.residual, planes: p.planes ?? [p.N], software: ctx.software, weights: ctx.weights }, { M: p.M, N: p.N, K: p.K, aOffset: p.aOffset ?? 0 },
    { X: { buffer: p.x }, W: { buffer: p.weight }, ...(p.bias ? { Bias: { buffer: p.bias } } : {}), ...(p.residual ? { Residual: { buffer: p.residual } } : {}), Y: { buffer: p.out } });
}

/** The layer's pre-norm of the residual stream into `normed`. */
export function preNorm(ctx: LayerContext, label: string, io: LayerIo, weight: GPUBuffer, normed: GPUBuffer, width: number, eps: number): Dispatch {
  return ctx.cache.dispatch(`${label} norm`, rmsNormKernel({ software: ctx.software }), rmsNormWorkgroups(ctx.L, width, width), { X: { buffer: io.hIn }, Weight: { buffer: weight }, result: { buffer: normed } }, { width, groupSize: width, eps });
}

export interface OutProjection {
  readonly weight: GPUBuffer;
  readonly bias?: GPUBuffer;
  /** Its input, and the element where its [L, K] rows start. */
  readonly input: GPUBuffer;
  readonly aOffset: number;
  readonly K: number;
  readonly H: number;
}

/**
 * out_proj into the residual stream: fused (the matmul's epilogue adds hidden_in), or, when the
 * mixer output is captured, written to its own buffer and added by a second dispatch.
 * Returns the dispatches and where `out` is.
 */
export function outProjection(ctx: LayerContext, label: string, io: LayerIo, p: OutProjection): { dispatches: Dispatch[]; out?: CaptureSource } {
  const { cache, L, software } = ctx;
  const options = (residual: boolean): MatmulOptions => ({ bias: !!p.bias, softplus: false, residual, planes: [p.H], software, weights: ctx.weights });
  const bias: Record<string, BufferRange> = p.bias ? { Bias: { buffer: p.bias } } : {};
  const shape = { M: L, N: p.H, K: p.K, aOffset: p.aOffset };
  if (!io.out) {
    return { dispatches: [...matmulDispatches(ctx, `${label} out_proj`, options(true), shape, { X: { buffer: p.input }, W: { buffer: p.weight }, ...bias, Residual: { buffer: io.hIn }, Y: { buffer: io.hOut } })] };
  }
  const out = ctx.shared(outProjection, () => ctx.allocate('mixer out', L * p.H));
  return {
    dispatches: [
      ...matmulDispatches(ctx, `${label} out_proj`, options(false), shape, { X: { buffer: p.input }, W: { buffer: p.weight }, ...bias, Y: { buffer: out } }),
      combineDispatch(cache, `${label} residual`, L * p.H, { buffer: io.hIn }, 1, { buffer: io.hOut }, { range: { buffer: out }, beta: 1 }),
    ],
    out: { range: whole(out, L * p.H), shape: [L, p.H] },
  };
}

/** The stream entering and leaving the layer, as captures. */
export function streamSources(io: LayerIo, L: number, H: number): Pick<Record<CaptureName, CaptureSource>, 'hidden_in' | 'hidden_out'> {
  return { hidden_in: { range: whole(io.hIn, L * H), shape: [L, H] }, hidden_out: { range: whole(io.hOut, L * H), shape: [L, H] } };
}
