/**
 * The Mamba-2 mixer on WebGPU (../../webgpu/), in the order of the float64 reference
 * (./reference.ts, the oracle), 5 dispatches (7 when the scan is chunked):
 *   in_proj into planes [z | xBC | dt] → conv1d + SiLU into planes [u | B | C]
 *   → clamp(softplus(dt + dt_bias)) → head scan with D·u → the gated norm (per group: of y·silu(z),
 *   or of y then ·silu(z); or y·silu(z) alone).
 * The Mamba-2 layer adds its RMSNorm before and out_proj into the residual after (+1 when the mixer
 * output is captured); a hybrid's Mamba-2 operation (../hybrid/webgpu.ts) runs the mixer on its
 * branch's normed input.
 */
import type { LayerEdit } from '../../interventions';
import type { Mamba2Config } from '../../model/config';
import { deltaScaleDispatches, scanChunkingFor, scanEditOption } from '../../webgpu/edits';
import type { ScanGeometry } from '../../webgpu/scanShaders';
import { convStateCapture, convSiluKernel, CONV_THREADS } from '../../webgpu/convSilu';
import { convPatchBinding } from '../../webgpu/patch';
import { dtSoftplusKernel, DT_THREADS } from '../../webgpu/dtSoftplus';
import { activationDispatch } from '../../webgpu/elementwise';
import type { Dispatch } from '../../webgpu/kernel';
import { outProjection, plane, preNorm, scanScratchBuffers, streamSources, uploadMixer, whole, type GpuMixer, type LayerContext, type MixerGpuWeights, type WebGpuEntry } from '../../webgpu/layer';
import { matmulDispatches } from '../../webgpu/matmul';
import { planeLayout } from '../../webgpu/planes';
import { rmsNormKernel, rmsNormWorkgroups } from '../../webgpu/rmsNorm';
import { scanDispatches } from '../../webgpu/selectiveScan';
import type { Mamba2LayerParams } from './params';
import { mamba2Shape, type Mamba2MixerShape } from './reference';

export interface Mamba2MixerGpuWeights extends MixerGpuWeights {
  readonly dtBias: GPUBuffer;
  /** None when the family has no gated norm (Falcon-H1 with mamba_rms_norm false). */
  readonly gatedNorm?: GPUBuffer;
}

export interface Mamba2GpuWeights extends Mamba2MixerGpuWeights {
  readonly norm: GPUBuffer;
}

/** The mixer's activations, shared by the plan's mixers of one shape (they run one after another). */
function mixerBuffers(ctx: LayerContext, s: Mamba2MixerShape, g: ScanGeometry) {
  const { L } = ctx;
  const Din = s.nHeads * s.headDim, GN = s.nGroups * s.dState;
  const projPlanes = planeLayout(L, [Din, Din + 2 * GN, s.nHeads]);
  const xbcPlanes = planeLayout(L, [Din, GN, GN]);
  const T = ctx.statesAt.length;
  return ctx.shared(mamba2GpuMixer, () => ({
    projPlanes,
    xbcPlanes,
    proj: ctx.allocate('in_proj [z | xBC | dt]', projPlanes.size),
    xbc: ctx.allocate('conv [u | B | C]', xbcPlanes.size),
    delta: ctx.allocate('delta', L * s.nHeads),
    scanOut: ctx.allocate('scan [y | states]', L * Din + T * Din * s.dState),
    gatedNormed: ctx.allocate('gated norm', L * Din),
    scratch: scanScratchBuffers(ctx, g),
  }), `${s.nHeads}·${s.headDim}·${s.dState}·${s.nGroups}`);
}

/** The mixer on `x` ([L, H], the normed stream), with the layer's interventions; out_proj is the caller's (GpuMixer.outProjInput). */
export function mamba2GpuMixer(s: Mamba2MixerShape, w: Mamba2MixerGpuWeights, x: GPUBuffer, H: number, label: string, states: boolean, ctx: LayerContext, edit?: LayerEdit): GpuMixer {
  const { cache, L, software } = ctx;
  const heads = s.nHeads, Din = heads * s.headDim, N = s.dState, GN = s.nGroups * N, convDim = Din + 2 * GN;
  const g: ScanGeometry = { L, channels: Din, N, heads, headDim: s.headDim, groups: s.nGroups, aPerState: false };
  const b = mixerBuffers(ctx, s, g);
  const T = ctx.statesAt.length;
  const chunking = scanChunkingFor(ctx, edit);
  const [lo, hi] = s.dtLimit;
  const z = plane(b.proj, b.projPlanes, 0);
  const n = s.gatedNorm;
  const gateStep: Dispatch = !n
    ? activationDispatch(cache, `${label} gate`, L * Din, 'silu', z, whole(b.scanOut, L * Din), 1, { buffer: b.gatedNormed })
    : cache.dispatch(`${label} gated norm`, rmsNormKernel({ gated: !n.beforeGate, gateAfter: n.beforeGate, software }), rmsNormWorkgroups(L, Din, n.groupSize),
      { Y: { buffer: b.scanOut }, Z: z, Weight: { buffer: w.gatedNorm! }, result: { buffer: b.gatedNormed } }, { width: Din, groupSize: n.groupSize, eps: n.eps });
  const params = ctx.scanParams(w.scanParams, 2 * heads, { states, scan: edit?.scan, stateSize: Din * N, patch: edit?.patch });
  // The conv's context before token 0, of this layer alone (zero until a carry is written there).
  const before = ctx.carryIn ? ctx.allocate(`${label} conv context`, (s.dConv - 1) * convDim) : undefined;
  // patch-state's conv context, read after its token by the conv and the conv_state windows.
  const patch = convPatchBinding(ctx, label, edit?.patch, s.dConv, convDim);
  // With the states, the conv's context at the same positions (a patch-state's source, a long run's carry).
  const convState = states && s.dConv > 1 ? convStateCapture(ctx, label, s.dConv, convDim, plane(b.proj, b.projPlanes, 1), before, patch) : undefined;
  const dispatches = [
    ...matmulDispatches(ctx, `${label} in_proj`, { bias: !!w.inProjB, softplus: false, residual: false, planes: b.projPlanes.widths, software, weights: ctx.weights }, { M: L, N: Din + convDim + heads, K: H, aOffset: 0 },
      { X: { buffer: x }, W: { buffer: w.inProjW }, ...(w.inProjB ? { Bias: { buffer: w.inProjB } } : {}), Y: { buffer: b.proj } }),
    cache.dispatch(`${label} conv1d`, convSiluKernel(s.dConv, !!w.convB, [Din, GN, GN], !!before, !!patch), cache.flatWorkgroups(L * convDim, CONV_THREADS),
      { X: plane(b.proj, b.projPlanes, 1), W: { buffer: w.convW }, ...(w.convB ? { Bias: { buffer: w.convB } } : {}), ...(before ? { Before: { buffer: before } } : {}), ...patch?.storage, result: { buffer: b.xbc } }, { rows: L, channels: convDim, ...patch?.uniforms }),
    ...(convState ? [convState.dispatch] : []),
    cache.dispatch(`${label} dt`, dtSoftplusKernel(), cache.flatWorkgroups(L * heads, DT_THREADS),
      // The WGSL spec lets a shader assume no infinities: an unbounded limit is the largest f32. It
      // may also arrive as null: the webview's messages are JSON, where Infinity is null.
      { Dt: plane(b.proj, b.projPlanes, 2), DtBias: { buffer: w.dtBias }, result: { buffer: b.delta } }, { total: L * heads, heads, lo, hi: Number.isFinite(hi) ? Math.min(hi, 3.4e38) : 3.4e38 }),
    ...deltaScaleDispatches(ctx, label, edit, b.delta, heads),
    ...scanDispatches(cache, `${label} scan`, g, chunking, {
      u: plane(b.xbc, b.xbcPlanes, 0), delta: { buffer: b.delta }, params: { buffer: params.params }, initial: !!params.initial, patched: !!params.patched,
      B: plane(b.xbc, b.xbcPlanes, 1), C: plane(b.xbc, b.xbcPlanes, 2), states, edit: scanEditOption(edit?.scan),
      out: { buffer: b.scanOut }, ...(chunking.chunks > 1 ? { ends: b.scratch.ends, carried: b.scratch.carried } : {}),
    }),
    gateStep,
  ];
  return {
    dispatches,
    ...(params.initial && before ? { carryIn: { h: params.initial, conv: whole(before, (s.dConv - 1) * convDim) } } : {}),
    sources: {
      z: { range: z, shape: [L, Din] },
      u: { range: plane(b.xbc, b.xbcPlanes, 0), shape: [L, Din] },
      delta: { range: whole(b.delta, L * heads), shape: [L, heads] },
      B: { range: plane(b.xbc, b.xbcPlanes, 1), shape: [L, GN] },
      C: { range: plane(b.xbc, b.xbcPlanes, 2), shape: [L, GN] },
      y: { range: whole(b.scanOut, L * Din), shape: [L, Din] },
      ...(convState ? { conv_state: convState.source } : {}),
      ...(states ? { h: { range: { buffer: b.scanOut, offset: 4 * L * Din, size: 4 * T * Din * N }, shape: [T, heads, s.headDim, N] } } : {}),
    },
    outProjInput: { input: b.gatedNormed, aOffset: 0, K: Din },
  };
}

export const mamba2WebGpu: WebGpuEntry<Mamba2Config, Mamba2LayerParams<'float32'>, Mamba2GpuWeights> = {
  upload: (_c, p, up) => ({
    ...uploadMixer(p, up),
    norm: up.upload('norm', p.norm.data),
    dtBias: up.upload('dt_bias', p.dtBias.data),
    gatedNorm: up.upload('gated norm', p.gatedNorm.data),
  }),

  build(c, w, io, ctx) {
    const { L } = ctx;
    const H = c.dModel;
    const normed = ctx.shared(mamba2WebGpu, () => ctx.allocate('normed', L * H));
    const at = `layer ${io.index}`;
    const mixer = mamba2GpuMixer(mamba2Shape(c), w, normed, H, at, io.states, ctx, io.edit);
    const tail = outProjection(ctx, at, io, { weight: w.outProjW, bias: w.outProjB, ...mixer.outProjInput, H });
    return {
      dispatches: [preNorm(ctx, at, io, w.norm, normed, H, c.eps), ...mixer.dispatches, ...tail.dispatches],
      sources: { ...streamSources(io, L, H), ...mixer.sources, ...(tail.out ? { out: tail.out } : {}) },
      ...(mixer.carryIn ? { carryIn: mixer.carryIn } : {}),
    };
  },
  stateCarried: () => true,
};
