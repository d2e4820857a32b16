/**
 * The Mamba-2 mixer on WebGPU (../../webgpu/), in the order of the float64 reference
 * (./reference.ts, the oracle), 7 dispatches (9 when the scan is chunked, +1 when the mixer
 * output is captured):
 *   RMSNorm → in_proj into planes [z | xBC | dt] → conv1d + SiLU into planes [u | B | C]
 *   → clamp(softplus(dt + dt_bias)) → head scan with D·u → RMSNorm(y·silu(z)) per group
 *   → out_proj + residual.
 */
import type { Mamba2Config } from '../../model/config';
import type { ScanGeometry } from '../../webgpu/scanShaders';
import { convSiluKernel, CONV_THREADS } from '../../webgpu/convSilu';
import { dtSoftplusKernel, DT_THREADS } from '../../webgpu/dtSoftplus';
import { outProjection, plane, preNorm, scanScratchBuffers, streamSources, uploadMixer, whole, type MixerGpuWeights, type WebGpuEntry } from '../../webgpu/layer';
import { matmulDispatches } from '../../webgpu/matmul';
import { planeLayout } from '../../webgpu/planes';
import { rmsNormKernel, rmsNormWorkgroups } from '../../webgpu/rmsNorm';
import { scanDispatches } from '../../webgpu/selectiveScan';
import { mamba2ConvDim, type Mamba2LayerParams } from './params';

export interface Mamba2GpuWeights extends MixerGpuWeights {
  readonly dtBias: GPUBuffer;
  readonly gatedNorm: GPUBuffer;
}

export const mamba2WebGpu: WebGpuEntry<Mamba2Config, Mamba2LayerParams<'float32'>, Mamba2GpuWeights> = {
  upload: (_c, p, up) => ({
    ...uploadMixer(p, up),
    dtBias: up.upload('dt_bias', p.dtBias.data),
    gatedNorm: up.upload('gated norm', p.gatedNorm.data),
  }),

  build(c, w, io, ctx) {
    const { cache, L, software } = ctx;
    const H = c.dModel, Din = c.dInner, heads = c.nHeads, N = c.dState, GN = c.nGroups * N, convDim = mamba2ConvDim(c);
    const projPlanes = planeLayout(L, [Din, convDim, heads]);
    const xbcPlanes = planeLayout(L, [Din, GN, GN]);
    const g: ScanGeometry = { L, channels: Din, N, heads, headDim: c.headDim, groups: c.nGroups, aPerState: false };
    const T = ctx.statesAt.length;
    const projOut = Din + convDim + heads;
    const [lo, hi] = c.timeStepLimit;
    // Activations shared by every Mamba-2 layer of the plan (the layers run one after another).
    const b = ctx.shared(mamba2WebGpu, () => ({
      normed: ctx.allocate('normed', L * H),
      proj: ctx.allocate('in_proj [z | xBC | dt]', projPlanes.size),
      xbc: ctx.allocate('conv [u | B | C]', xbcPlanes.size),
      delta: ctx.allocate('delta', L * heads),
      scanOut: ctx.allocate('scan [y | states]', L * Din + T * Din * N),
      gatedNormed: ctx.allocate('gated norm', L * Din),
      scratch: scanScratchBuffers(ctx, g),
    }));
    const at = `layer ${io.index}`;
    const tail = outProjection(ctx, at, io, { weight: w.outProjW, bias: w.outProjB, input: b.gatedNormed, aOffset: 0, K: Din, H });
    const dispatches = [
      preNorm(ctx, at, io, w.norm, b.normed, H, c.eps),
      ...matmulDispatches(ctx, `${at} in_proj`, { bias: !!w.inProjB, softplus: false, residual: false, planes: [Din, convDim, heads], software, weights: ctx.weights }, { M: L, N: projOut, K: H, aOffset: 0 },
        { X: { buffer: b.normed }, W: { buffer: w.inProjW }, ...(w.inProjB ? { Bias: { buffer: w.inProjB } } : {}), Y: { buffer: b.proj } }),
      cache.dispatch(`${at} conv1d`, convSiluKernel(c.dConv, !!w.convB, [Din, GN, GN]), cache.flatWorkgroups(L * convDim, CONV_THREADS),
        { X: plane(b.proj, projPlanes, 1), W: { buffer: w.convW }, ...(w.convB ? { Bias: { buffer: w.convB } } : {}), result: { buffer: b.xbc } }, { rows: L, channels: convDim }),
      // The WGSL spec lets a shader assume no infinities: an unbounded limit is the largest f32. It
      // may also arrive as null: the webview's messages are JSON, where Infinity is null.
      cache.dispatch(`${at} dt`, dtSoftplusKernel(), cache.flatWorkgroups(L * heads, DT_THREADS),
        { Dt: plane(b.proj, projPlanes, 2), DtBias: { buffer: w.dtBias }, result: { buffer: b.delta } }, { total: L * heads, heads, lo, hi: Number.isFinite(hi) ? Math.min(hi, 3.4e38) : 3.4e38 }),
      ...scanDispatches(cache, `${at} scan`, g, b.scratch.chunking, {
        u: plane(b.xbc, xbcPlanes, 0), delta: { buffer: b.delta }, params: { buffer: io.states ? ctx.withStateSlots(w.scanParams, 2 * heads) : w.scanParams },
        B: plane(b.xbc, xbcPlanes, 1), C: plane(b.xbc, xbcPlanes, 2), states: io.states,
        out: { buffer: b.scanOut }, ends: b.scratch.ends, carried: b.scratch.carried,
      }),
      cache.dispatch(`${at} gated norm`, rmsNormKernel({ gated: true, software }), rmsNormWorkgroups(L, Din, c.normGroupSize),
        { Y: { buffer: b.scanOut }, Z: plane(b.proj, projPlanes, 0), Weight: { buffer: w.gatedNorm }, result: { buffer: b.gatedNormed } }, { width: Din, groupSize: c.normGroupSize, eps: c.eps }),
      ...tail.dispatches,
    ];
    return {
      dispatches,
      sources: {
        ...streamSources(io, L, H),
        z: { range: plane(b.proj, projPlanes, 0), shape: [L, Din] },
        u: { range: plane(b.xbc, xbcPlanes, 0), shape: [L, Din] },
        delta: { range: whole(b.delta, L * heads), shape: [L, heads] },
        B: { range: plane(b.xbc, xbcPlanes, 1), shape: [L, GN] },
        C: { range: plane(b.xbc, xbcPlanes, 2), shape: [L, GN] },
        y: { range: whole(b.scanOut, L * Din), shape: [L, Din] },
        ...(io.states ? { h: { range: { buffer: b.scanOut, offset: 4 * L * Din, size: 4 * T * Din * N }, shape: [T, heads, c.headDim, N] } } : {}),
        ...(tail.out ? { out: tail.out } : {}),
      },
    };
  },
};
