/**
 * The hybrid decoder layer on the native WebGPU engine: the same composition as reference.ts (the
 * oracle) and tfjs.ts (compose.ts), each operation on its module's WebGPU forward, all recorded
 * into the plan's one submit. Values between steps are device buffers with a pending scale, so
 * the families' µP multipliers cost no dispatch of their own: they fold into the next sum.
 * Weights are kept by full key: linear weights in the model's weight format, A_log as the scan's
 * [A | D] (`<op>A|D`), Falcon-H1's in_proj with its segment multipliers folded into its rows,
 * Granite's fused experts sliced per expert. ablate-path replaces a path's output (ssm_out,
 * attn_out, a feed-forward branch's ops) before its multipliers, as reference.ts does.
 */
import type { PathAblation } from '../../interventions';
import type { Param } from '../../model/params';
import { combineDispatch, concatKernel, ELEMENTWISE_THREADS } from '../../webgpu/elementwise';
import type { Dispatch, KernelSpec } from '../../webgpu/kernel';
import { layerScratch, projectionDispatches, streamSources, whole, type CaptureName, type CaptureSource, type CarryIn, type GpuUploader, type LayerBuild, type LayerContext, type LayerIo, type LayerScratch, type WebGpuEntry } from '../../webgpu/layer';
import { rmsNormKernel, rmsNormWorkgroups } from '../../webgpu/rmsNorm';
import { attentionGpu, type GpuOpWeights } from '../attention/webgpu';
import { mamba1GpuMixer, type Mamba1MixerGpuWeights } from '../mamba1/webgpu';
import { mamba2GpuMixer, type Mamba2MixerGpuWeights } from '../mamba2/webgpu';
import { mlpGpu } from '../mlp/webgpu';
import { expertSlice } from '../moe/reference';
import { fusedExpertKey, moeGpu } from '../moe/webgpu';
import { composeLayer } from './compose';
import { layerOps, type HybridLayerConfig, type Mamba1Op, type Mamba2Op, type NormSpec, type Op } from './config';

export type HybridGpuWeights = Readonly<Record<string, GPUBuffer>>;
type F32 = Param<'float32'>;

/** in_proj's rows (and bias) times their segment's multiplier (z, x, B, C, dt), in float64, rounded once. */
function scaledInProj(op: Mamba2Op, weight: F32, bias: F32 | undefined) {
  const Din = op.nHeads * op.headDim, GN = op.nGroups * op.dState;
  const ends = [Din, 2 * Din, 2 * Din + GN, 2 * Din + 2 * GN, 2 * Din + 2 * GN + op.nHeads];
  const scales = op.segmentScales!;
  const rowScale = (r: number) => scales[ends.findIndex((end) => r < end)];
  const K = weight.shape[1];
  return {
    weight: weight.data.map((v, i) => v * rowScale(Math.floor(i / K))),
    ...(bias ? { bias: bias.data.map((v, r) => v * rowScale(r)) } : {}),
  };
}

function upload(c: HybridLayerConfig, p: Readonly<Record<string, F32>>, up: GpuUploader): HybridGpuWeights {
  const out: Record<string, GPUBuffer> = {};
  const taken = new Set<string>();
  for (const op of layerOps(c)) {
    if (op.kind === 'mamba1' || op.kind === 'mamba2') {
      out[`${op.key}A|D`] = up.scanParams(`${op.key}A|D`, p[`${op.key}A_log`], p[`${op.key}D`]);
      taken.add(`${op.key}A_log`).add(`${op.key}D`);
      if (op.kind === 'mamba2' && op.segmentScales && op.segmentScales.some((s) => s !== 1)) {
        const scaled = scaledInProj(op, p[`${op.key}in_proj.weight`], p[`${op.key}in_proj.bias`]);
        out[`${op.key}in_proj.weight`] = up.projection(`${op.key}in_proj.weight`, scaled.weight);
        if (scaled.bias) out[`${op.key}in_proj.bias`] = up.upload(`${op.key}in_proj.bias`, scaled.bias);
        taken.add(`${op.key}in_proj.weight`).add(`${op.key}in_proj.bias`);
      }
    }
    if (op.kind === 'moe' && op.layout === 'fused') {
      const [input, output] = [p[`${op.key}input_linear.weight`], p[`${op.key}output_linear.weight`]];
      for (let e = 0; e < op.experts; e++) {
        out[fusedExpertKey(op, e, 'gate_up')] = up.projection(fusedExpertKey(op, e, 'gate_up'), expertSlice(input, e).data);
        out[fusedExpertKey(op, e, 'down')] = up.projection(fusedExpertKey(op, e, 'down'), expertSlice(output, e).data);
      }
      taken.add(`${op.key}input_linear.weight`).add(`${op.key}output_linear.weight`);
    }
  }
  // Every other [out, in] matrix is a projection; conv1d's [C, 1, K] is read as f32 by the conv kernel.
  for (const [key, t] of Object.entries(p)) {
    if (!taken.has(key)) out[key] = t.shape.length === 2 && !key.endsWith('conv1d.weight') ? up.projection(key, t.data) : up.upload(key, t.data);
  }
  return out;
}

function mamba1Weights(op: Mamba1Op, w: GpuOpWeights, has: (key: string) => boolean): Mamba1MixerGpuWeights {
  const k = op.key;
  const opt = (key: string) => (has(key) ? w(key) : undefined);
  const learned = has(`${k}dt_layernorm.weight`);
  return {
    inProjW: w(`${k}in_proj.weight`), inProjB: opt(`${k}in_proj.bias`), convW: w(`${k}conv1d.weight`), convB: opt(`${k}conv1d.bias`),
    scanParams: w(`${k}A|D`), outProjW: w(`${k}out_proj.weight`), outProjB: opt(`${k}out_proj.bias`),
    xProjW: w(`${k}x_proj.weight`), dtProjW: w(`${k}dt_proj.weight`), dtProjB: w(`${k}dt_proj.bias`),
    ...(learned ? { dtBcNorms: [w(`${k}dt_layernorm.weight`), w(`${k}b_layernorm.weight`), w(`${k}c_layernorm.weight`)] as const } : {}),
  };
}

function mamba2Weights(op: Mamba2Op, w: GpuOpWeights, has: (key: string) => boolean): Mamba2MixerGpuWeights {
  const k = op.key;
  const opt = (key: string) => (has(key) ? w(key) : undefined);
  return {
    inProjW: w(`${k}in_proj.weight`), inProjB: opt(`${k}in_proj.bias`), convW: w(`${k}conv1d.weight`), convB: opt(`${k}conv1d.bias`),
    scanParams: w(`${k}A|D`), outProjW: w(`${k}out_proj.weight`), outProjB: opt(`${k}out_proj.bias`),
    dtBias: w(`${k}dt_bias`), gatedNorm: opt(`${k}norm.weight`),
  };
}

const MEAN_THREADS = 64;

/**
 * ablate-path mode=mean: every row of `result` [rows, width] the column means of X over all its
 * rows, as reference.ts's ablatedPath (later positions too). One invocation per column, summing
 * down it: the reads of neighbouring invocations are neighbouring words.
 */
function columnMeanKernel(): KernelSpec {
  return {
    storage: [{ name: 'X', type: 'f32' }, { name: 'result', type: 'f32', write: true }],
    uniforms: [['rows', 'i32'], ['width', 'i32']],
    workgroupSize: MEAN_THREADS,
    entry: 'flat',
    body: `
fn main(j : i32) {
  let W = uniforms.width;
  if (j >= W) { return; }
  var sum = 0.0;
  for (var t = 0; t < uniforms.rows; t = t + 1) { sum = sum + X[t * W + j]; }
  let mean = sum / f32(uniforms.rows);
  for (var t = 0; t < uniforms.rows; t = t + 1) { result[t * W + j] = mean; }
}`,
  };
}

/** A value between steps: `factor` · buffer, [L, width]. */
interface GpuValue {
  readonly buffer: GPUBuffer;
  readonly width: number;
  readonly factor: number;
}

function build(c: HybridLayerConfig, weights: HybridGpuWeights, io: LayerIo, ctx: LayerContext): LayerBuild {
  const { cache, L, software } = ctx;
  const H = c.dModel;
  const at = `layer ${io.index}`;
  const has = (key: string) => weights[key] !== undefined;
  const w: GpuOpWeights = (key) => {
    const b = weights[key];
    if (!b) throw new Error(`layer ${c.index} read weight "${key}", which it did not upload`);
    return b;
  };
  const scratch: LayerScratch = layerScratch(ctx, hybridWebGpu);
  const dispatches: Dispatch[] = [];
  const sources: Partial<Record<CaptureName, CaptureSource>> = streamSources(io, L, H);
  let carryIn: CarryIn | undefined;
  const value = (buffer: GPUBuffer, width = H): GpuValue => ({ buffer, width, factor: 1 });
  const combine = (label: string, a: GpuValue, b?: GpuValue, into = scratch(label, L * a.width)): GpuValue => {
    dispatches.push(combineDispatch(cache, `${at} ${label}`, L * a.width, { buffer: a.buffer }, a.factor, { buffer: into }, b ? { range: { buffer: b.buffer }, beta: b.factor } : undefined));
    return value(into, a.width);
  };
  /** The value's buffer with its pending scale applied. */
  const settled = (v: GpuValue, label: string): GPUBuffer => (v.factor === 1 ? v.buffer : combine(`${label} scaled`, v).buffer);
  const norm = (x: GPUBuffer, width: number, spec: NormSpec, label: string): GPUBuffer => {
    const out = scratch(`${label} norm`, L * width);
    dispatches.push(cache.dispatch(`${at} ${label} norm`, rmsNormKernel({ software }), rmsNormWorkgroups(L, width, width), { X: { buffer: x }, Weight: { buffer: w(spec.key) }, result: { buffer: out } }, { width, groupSize: width, eps: spec.eps }));
    return out;
  };

  const modes = new Map(io.edit?.ablatePath?.map((a) => [a.path, a.mode]));
  /** A path's output, or ablate-path's replacement of it: zeros (a buffer of the plan's own, never written: WebGPU zero-initialises buffers, and no dispatch writes it), or its column means. */
  const ablate = (path: PathAblation['path'], x: GPUBuffer): GPUBuffer => {
    const mode = modes.get(path);
    if (!mode) return x;
    if (mode === 'zero') return ctx.allocate(`${at} ${path} ablated (zeros)`, L * H);
    const out = scratch(`${path} mean`, L * H);
    dispatches.push(cache.dispatch(`${at} ${path} mean`, columnMeanKernel(), cache.flatWorkgroups(H, MEAN_THREADS), { X: { buffer: x }, result: { buffer: out } }, { rows: L, width: H }));
    return out;
  };
  // The mlp path is a feed-forward branch's sum: each of its ops replaced is the sum replaced (zero and mean are linear). Zamba2's shared MLP is not one.
  const feedForward = new Set(c.branches.filter((b) => b.ops.every((op) => op.kind === 'mlp' || op.kind === 'moe')).flatMap((b) => b.ops));
  const runOp = (op: Op, x: GPUBuffer, keepInternals = true): GPUBuffer => {
    const label = `${at} ${op.kind}`;
    switch (op.kind) {
      case 'mamba1':
      case 'mamba2': {
        const mixer = op.kind === 'mamba1'
          ? mamba1GpuMixer(op, mamba1Weights(op, w, has), x, H, label, io.states, ctx, io.edit)
          : mamba2GpuMixer(op, mamba2Weights(op, w, has), x, H, label, io.states, ctx, io.edit);
        const out = scratch(`${label} out_proj`, L * H);
        const bias = has(`${op.key}out_proj.bias`) ? w(`${op.key}out_proj.bias`) : undefined;
        dispatches.push(...mixer.dispatches, ...projectionDispatches(ctx, `${label} out_proj`, { x: mixer.outProjInput.input, aOffset: mixer.outProjInput.aOffset, weight: w(`${op.key}out_proj.weight`), bias, M: L, N: H, K: mixer.outProjInput.K, out }));
        const path = ablate('ssm', out);
        Object.assign(sources, mixer.sources, { ssm_out: { range: whole(path, L * H), shape: [L, H] } });
        // The layer's carry is its Mamba operation's, as in reference.ts.
        carryIn = mixer.carryIn;
        return path;
      }
      case 'attention': {
        const a = attentionGpu(op, w, x, H, label, keepInternals && io.pattern, ctx, scratch);
        dispatches.push(...a.dispatches);
        // The shared block's attention (keepInternals false) is not a path.
        const path = keepInternals ? ablate('attention', a.out) : a.out;
        if (keepInternals) Object.assign(sources, { attn_out: { range: whole(path, L * H), shape: [L, H] } }, a.pattern ? { attn_pattern: a.pattern } : {});
        return path;
      }
      case 'mlp': {
        const m = mlpGpu(op, w, x, H, label, ctx, scratch);
        dispatches.push(...m.dispatches);
        return feedForward.has(op) ? ablate('mlp', m.out) : m.out;
      }
      case 'moe': {
        const m = moeGpu(op, w, x, H, label, ctx, scratch);
        dispatches.push(...m.dispatches);
        Object.assign(sources, { moe_experts: m.experts, moe_weights: m.weights });
        return feedForward.has(op) ? ablate('mlp', m.out) : m.out;
      }
    }
  };

  const stream = composeLayer<GpuValue>(c, value(io.hIn), {
    add: (a, b) => combine('sum', a, b),
    scale: (x, s) => ({ ...x, factor: x.factor * s }),
    norm: (x, b) => value(norm(settled(x, 'norm input'), x.width, b.norm, 'branch')),
    // Zamba2: attention and the MLP on concat(stream, embeddings), through the layer's linear into the stream (as tfjs.ts and reference.ts, no internals of its own).
    shared: (x, b) => {
      const s = b.shared!;
      if (!io.embeddings) throw new Error(`layer ${c.index}: Zamba2's shared block reads the embeddings, which the plan did not keep`);
      const joined = scratch('concat', L * 2 * H);
      dispatches.push(cache.dispatch(`${at} concat`, concatKernel(), cache.flatWorkgroups(L * 2 * H, ELEMENTWISE_THREADS), { A: { buffer: settled(x, 'shared input') }, B: { buffer: io.embeddings }, result: { buffer: joined } }, { rows: L, wa: H, wb: H }));
      const attention = runOp(s.attention, norm(joined, 2 * H, s.inputNorm, 'shared input'), false);
      const mlp = runOp(s.mlp, norm(attention, H, s.ffNorm, 'shared feed-forward'), false);
      const linear = scratch('shared linear', L * H);
      dispatches.push(...projectionDispatches(ctx, `${at} shared linear`, { x: mlp, weight: w(s.linearKey), M: L, N: H, K: H, out: linear }));
      return combine('shared sum', x, value(linear));
    },
    op: (op, x) => value(runOp(op, settled(x, `${op.kind} input`))),
  }, (name, t) => (sources[name] = { range: whole(settled(t, name), L * H), shape: [L, H] }));
  // The stream into the plan's buffer (its pending scale, if any, applied on the way).
  combine('hidden_out', stream, undefined, io.hOut);
  return { dispatches, sources, ...(carryIn ? { carryIn } : {}) };
}

export const hybridWebGpu: WebGpuEntry<HybridLayerConfig, Readonly<Record<string, F32>>, HybridGpuWeights> = {
  upload,
  build,
  readsEmbeddings: (c) => c.branches.some((b) => b.shared),
  // Its Mamba operation's state carries over; attention (a shared block's too: layerOps lists it) does not.
  stateCarried: (c) => !layerOps(c).some((op) => op.kind === 'attention'),
};
