/**
 * The Mamba-1 mixer on WebGPU (../../webgpu/), in the order of the float64 reference
 * (./reference.ts, the oracle), 5 dispatches (7 when the scan is chunked, +3 for the norms on dt,
 * B and C):
 *   in_proj into planes [x | z] → conv1d + SiLU → u → x_proj into planes [dt | B | C]
 *   (→ RMSNorm of each plane: weightless in FalconMamba, learned in Jamba)
 *   → dt_proj + bias + softplus → Δ → scan with D·u and the y·silu(z) gate.
 * The Mamba-1 layer adds its RMSNorm before and out_proj into the residual after (+1 when the
 * mixer output is captured); Jamba's Mamba operation (../hybrid/webgpu.ts) runs the mixer on its
 * branch's normed input.
 */
import type { LayerEdit } from '../../interventions';
import type { Mamba1Config } from '../../model/config';
import { deltaScaleDispatches, scanChunkingFor, scanEditOption } from '../../webgpu/edits';
import type { ScanGeometry } from '../../webgpu/scanShaders';
import { convStateCapture, convSiluKernel, CONV_THREADS } from '../../webgpu/convSilu';
import { convPatchBinding } from '../../webgpu/patch';
import type { Dispatch } from '../../webgpu/kernel';
import { outProjection, plane, preNorm, scanScratchBuffers, streamSources, uploadMixer, whole, type GpuMixer, type LayerContext, type MixerGpuWeights, type WebGpuEntry } from '../../webgpu/layer';
import { matmulDispatches } from '../../webgpu/matmul';
import { planeLayout } from '../../webgpu/planes';
import { rmsNormKernel, rmsNormWorkgroups } from '../../webgpu/rmsNorm';
import { scanDispatches } from '../../webgpu/selectiveScan';
import type { Mamba1LayerParams } from './params';
import type { Mamba1MixerShape } from './reference';

export interface Mamba1MixerGpuWeights extends MixerGpuWeights {
  readonly xProjW: GPUBuffer;
  readonly dtProjW: GPUBuffer;
  readonly dtProjB: GPUBuffer;
  /** Jamba's learned weights of the norms on dt, B and C (FalconMamba's have none). */
  readonly dtBcNorms?: readonly [GPUBuffer, GPUBuffer, GPUBuffer];
}

export interface Mamba1GpuWeights extends Mamba1MixerGpuWeights {
  readonly norm: GPUBuffer;
}

function mixerBuffers(ctx: LayerContext, s: Mamba1MixerShape, g: ScanGeometry) {
  const { L } = ctx;
  const D = s.dInner, N = s.dState, R = s.dtRank;
  const projPlanes = planeLayout(L, [D, D]);
  const xdblPlanes = planeLayout(L, [R, N, N]);
  const T = ctx.statesAt.length;
  return ctx.shared(mamba1GpuMixer, () => ({
    projPlanes,
    xdblPlanes,
    proj: ctx.allocate('in_proj [x | z]', projPlanes.size),
    u: ctx.allocate('u', L * D),
    xdbl: ctx.allocate('x_proj [dt | B | C]', xdblPlanes.size),
    xdblNormed: s.dtBcNormEps !== undefined ? ctx.allocate('normed [dt | B | C]', xdblPlanes.size) : undefined,
    delta: ctx.allocate('delta', L * D),
    scanOut: ctx.allocate('scan [y | gated | states]', 2 * L * D + T * D * N),
    scratch: scanScratchBuffers(ctx, g),
  }), `${D}·${N}·${R}·${s.dtBcNormEps !== undefined}`);
}

/** The mixer on `x` ([L, H], the normed stream), with the layer's interventions; out_proj is the caller's (GpuMixer.outProjInput: the gated half of the scan's output). */
export function mamba1GpuMixer(s: Mamba1MixerShape, w: Mamba1MixerGpuWeights, x: GPUBuffer, H: number, label: string, states: boolean, ctx: LayerContext, edit?: LayerEdit): GpuMixer {
  const { cache, L, software } = ctx;
  const D = s.dInner, N = s.dState, R = s.dtRank;
  const g: ScanGeometry = { L, channels: D, N, heads: D, headDim: 1, groups: 1, aPerState: true };
  const b = mixerBuffers(ctx, s, g);
  const T = ctx.statesAt.length;
  const chunking = scanChunkingFor(ctx, edit);
  // dt, B and C as the rest of the mixer reads them: the normed copies, or x_proj's planes.
  const dtbc = b.xdblNormed ?? b.xdbl;
  const norms: Dispatch[] = b.xdblNormed
    ? [R, N, N].map((width, p) =>
        cache.dispatch(`${label} ${['dt', 'B', 'C'][p]} norm`, rmsNormKernel({ weightless: !w.dtBcNorms, software }), rmsNormWorkgroups(L, width, width),
          { X: plane(b.xdbl, b.xdblPlanes, p), ...(w.dtBcNorms ? { Weight: { buffer: w.dtBcNorms[p] } } : {}), result: plane(dtbc, b.xdblPlanes, p) }, { width, groupSize: width, eps: s.dtBcNormEps! }))
    : [];
  const params = ctx.scanParams(w.scanParams, D * N + D, { states, scan: edit?.scan, stateSize: D * N, patch: edit?.patch });
  // The conv's context before token 0, of this layer alone (zero until a carry is written there).
  const before = ctx.carryIn ? ctx.allocate(`${label} conv context`, (s.dConv - 1) * D) : undefined;
  // patch-state's conv context, read after its token by the conv and the conv_state windows.
  const patch = convPatchBinding(ctx, label, edit?.patch, s.dConv, D);
  // With the states, the conv's context at the same positions (a patch-state's source, a long run's carry).
  const convState = states && s.dConv > 1 ? convStateCapture(ctx, label, s.dConv, D, plane(b.proj, b.projPlanes, 0), before, patch) : undefined;
  const dispatches: Dispatch[] = [
    ...matmulDispatches(ctx, `${label} in_proj`, { bias: !!w.inProjB, softplus: false, residual: false, planes: [D, D], software, weights: ctx.weights }, { M: L, N: 2 * D, K: H, aOffset: 0 },
      { X: { buffer: x }, W: { buffer: w.inProjW }, ...(w.inProjB ? { Bias: { buffer: w.inProjB } } : {}), Y: { buffer: b.proj } }),
    cache.dispatch(`${label} conv1d`, convSiluKernel(s.dConv, !!w.convB, [D], !!before, !!patch), cache.flatWorkgroups(L * D, CONV_THREADS),
      { X: plane(b.proj, b.projPlanes, 0), W: { buffer: w.convW }, ...(w.convB ? { Bias: { buffer: w.convB } } : {}), ...(before ? { Before: { buffer: before } } : {}), ...patch?.storage, result: { buffer: b.u } }, { rows: L, channels: D, ...patch?.uniforms }),
    ...(convState ? [convState.dispatch] : []),
    ...matmulDispatches(ctx, `${label} x_proj`, { bias: false, softplus: false, residual: false, planes: [R, N, N], software, weights: ctx.weights }, { M: L, N: R + 2 * N, K: D, aOffset: 0 },
      { X: { buffer: b.u }, W: { buffer: w.xProjW }, Y: { buffer: b.xdbl } }),
    ...norms,
    ...matmulDispatches(ctx, `${label} dt_proj`, { bias: true, softplus: true, residual: false, planes: [D], software, weights: ctx.weights }, { M: L, N: D, K: R, aOffset: 0 },
      { X: plane(dtbc, b.xdblPlanes, 0), W: { buffer: w.dtProjW }, Bias: { buffer: w.dtProjB }, Y: { buffer: b.delta } }),
    ...deltaScaleDispatches(ctx, label, edit, b.delta, D),
    ...scanDispatches(cache, `${label} scan`, g, chunking, {
      u: { buffer: b.u }, delta: { buffer: b.delta }, params: { buffer: params.params }, initial: !!params.initial, patched: !!params.patched,
      B: plane(dtbc, b.xdblPlanes, 1), C: plane(dtbc, b.xdblPlanes, 2), z: plane(b.proj, b.projPlanes, 1), states, edit: scanEditOption(edit?.scan),
      out: { buffer: b.scanOut }, ...(chunking.chunks > 1 ? { ends: b.scratch.ends, carried: b.scratch.carried } : {}),
    }),
  ];
  return {
    dispatches,
    ...(params.initial && before ? { carryIn: { h: params.initial, conv: whole(before, (s.dConv - 1) * D) } } : {}),
    sources: {
      z: { range: plane(b.proj, b.projPlanes, 1), shape: [L, D] },
      u: { range: whole(b.u, L * D), shape: [L, D] },
      delta: { range: whole(b.delta, L * D), shape: [L, D] },
      B: { range: plane(dtbc, b.xdblPlanes, 1), shape: [L, N] },
      C: { range: plane(dtbc, b.xdblPlanes, 2), shape: [L, N] },
      y: { range: whole(b.scanOut, L * D), shape: [L, D] },
      ...(convState ? { conv_state: convState.source } : {}),
      ...(states ? { h: { range: { buffer: b.scanOut, offset: 4 * 2 * L * D, size: 4 * T * D * N }, shape: [T, D, N] } } : {}),
    },
    // The gated half of [y | gated | states].
    outProjInput: { input: b.scanOut, aOffset: L * D, K: D },
  };
}

export const mamba1WebGpu: WebGpuEntry<Mamba1Config, Mamba1LayerParams<'float32'>, Mamba1GpuWeights> = {
  upload: (_c, p, up) => ({
    ...uploadMixer(p, up),
    norm: up.upload('norm', p.norm.data),
    xProjW: up.projection('x_proj', p.xProjW.data),
    dtProjW: up.projection('dt_proj', p.dtProjW.data),
    dtProjB: up.upload('dt_proj bias', p.dtProjB.data),
  }),

  build(c, w, io, ctx) {
    const { L } = ctx;
    const H = c.dModel;
    const normed = ctx.shared(mamba1WebGpu, () => ctx.allocate('normed', L * H));
    const at = `layer ${io.index}`;
    const mixer = mamba1GpuMixer(c, w, normed, H, at, io.states, ctx, io.edit);
    const tail = outProjection(ctx, at, io, { weight: w.outProjW, bias: w.outProjB, ...mixer.outProjInput, H });
    return {
      dispatches: [preNorm(ctx, at, io, w.norm, normed, H, c.eps), ...mixer.dispatches, ...tail.dispatches],
      sources: { ...streamSources(io, L, H), ...mixer.sources, ...(tail.out ? { out: tail.out } : {}) },
      ...(mixer.carryIn ? { carryIn: mixer.carryIn } : {}),
    };
  },
  stateCarried: () => true,
};
