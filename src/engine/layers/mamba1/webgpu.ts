/**
 * The Mamba-1 mixer on WebGPU (../../webgpu/), in the order of the float64 reference
 * (./reference.ts, the oracle), 7 dispatches (9 when the scan is chunked, +3 for FalconMamba's
 * norms, +1 when the mixer output is captured):
 *   RMSNorm → in_proj into planes [x | z] → conv1d + SiLU → u → x_proj into planes [dt | B | C]
 *   (→ FalconMamba: weightless RMSNorm of each plane) → dt_proj + bias + softplus → Δ
 *   → scan with D·u and the y·silu(z) gate → out_proj + residual.
 */
import type { Mamba1Config } from '../../model/config';
import type { ScanGeometry } from '../../webgpu/scanShaders';
import { convSiluKernel, CONV_THREADS } from '../../webgpu/convSilu';
import type { Dispatch } from '../../webgpu/kernel';
import { outProjection, plane, preNorm, scanScratchBuffers, streamSources, uploadMixer, whole, type MixerGpuWeights, type WebGpuEntry } from '../../webgpu/layer';
import { matmulDispatches } from '../../webgpu/matmul';
import { planeLayout } from '../../webgpu/planes';
import { rmsNormKernel, rmsNormWorkgroups } from '../../webgpu/rmsNorm';
import { scanDispatches } from '../../webgpu/selectiveScan';
import type { Mamba1LayerParams } from './params';

export interface Mamba1GpuWeights extends MixerGpuWeights {
  readonly xProjW: GPUBuffer;
  readonly dtProjW: GPUBuffer;
  readonly dtProjB: GPUBuffer;
}

export const mamba1WebGpu: WebGpuEntry<Mamba1Config, Mamba1LayerParams<'float32'>, Mamba1GpuWeights> = {
  upload: (_c, p, up) => ({
    ...uploadMixer(p, up),
    xProjW: up.projection('x_proj', p.xProjW.data),
    dtProjW: up.projection('dt_proj', p.dtProjW.data),
    dtProjB: up.upload('dt_proj bias', p.dtProjB.data),
  }),

  build(c, w, io, ctx) {
    const { cache, L, software } = ctx;
    const H = c.dModel, D = c.dInner, N = c.dState, R = c.dtRank;
    const falcon = c.dtBcNormEps !== undefined;
    const projPlanes = planeLayout(L, [D, D]);
    const xdblPlanes = planeLayout(L, [R, N, N]);
    const g: ScanGeometry = { L, channels: D, N, heads: D, headDim: 1, groups: 1, aPerState: true };
    const T = ctx.statesAt.length;
    // Activations shared by every Mamba-1 layer of the plan (the layers run one after another).
    const b = ctx.shared(mamba1WebGpu, () => ({
      normed: ctx.allocate('normed', L * H),
      proj: ctx.allocate('in_proj [x | z]', projPlanes.size),
      u: ctx.allocate('u', L * D),
      xdbl: ctx.allocate('x_proj [dt | B | C]', xdblPlanes.size),
      xdblNormed: falcon ? ctx.allocate('normed [dt | B | C]', xdblPlanes.size) : undefined,
      delta: ctx.allocate('delta', L * D),
      scanOut: ctx.allocate('scan [y | gated | states]', 2 * L * D + T * D * N),
      scratch: scanScratchBuffers(ctx, g),
    }));
    const at = `layer ${io.index}`;
    // dt, B and C as the rest of the layer reads them: FalconMamba's normed copies, or x_proj's planes.
    const dtbc = b.xdblNormed ?? b.xdbl;
    const norms: Dispatch[] = b.xdblNormed
      ? [R, N, N].map((width, p) =>
          cache.dispatch(`${at} ${['dt', 'B', 'C'][p]} norm`, rmsNormKernel({ weightless: true, software }), rmsNormWorkgroups(L, width, width),
            { X: plane(b.xdbl, xdblPlanes, p), result: plane(dtbc, xdblPlanes, p) }, { width, groupSize: width, eps: c.dtBcNormEps! }))
      : [];
    const tail = outProjection(ctx, at, io, { weight: w.outProjW, bias: w.outProjB, input: b.scanOut, aOffset: L * D, K: D, H });
    const dispatches: Dispatch[] = [
      preNorm(ctx, at, io, w.norm, b.normed, H, c.eps),
      ...matmulDispatches(ctx, `${at} in_proj`, { bias: !!w.inProjB, softplus: false, residual: false, planes: [D, D], software, weights: ctx.weights }, { M: L, N: 2 * D, K: H, aOffset: 0 },
        { X: { buffer: b.normed }, W: { buffer: w.inProjW }, ...(w.inProjB ? { Bias: { buffer: w.inProjB } } : {}), Y: { buffer: b.proj } }),
      cache.dispatch(`${at} conv1d`, convSiluKernel(c.dConv, !!w.convB, [D]), cache.flatWorkgroups(L * D, CONV_THREADS),
        { X: plane(b.proj, projPlanes, 0), W: { buffer: w.convW }, ...(w.convB ? { Bias: { buffer: w.convB } } : {}), result: { buffer: b.u } }, { rows: L, channels: D }),
      ...matmulDispatches(ctx, `${at} x_proj`, { bias: false, softplus: false, residual: false, planes: [R, N, N], software, weights: ctx.weights }, { M: L, N: R + 2 * N, K: D, aOffset: 0 },
        { X: { buffer: b.u }, W: { buffer: w.xProjW }, Y: { buffer: b.xdbl } }),
      ...norms,
      ...matmulDispatches(ctx, `${at} dt_proj`, { bias: true, softplus: true, residual: false, planes: [D], software, weights: ctx.weights }, { M: L, N: D, K: R, aOffset: 0 },
        { X: plane(dtbc, xdblPlanes, 0), W: { buffer: w.dtProjW }, Bias: { buffer: w.dtProjB }, Y: { buffer: b.delta } }),
      ...scanDispatches(cache, `${at} scan`, g, b.scratch.chunking, {
        u: { buffer: b.u }, delta: { buffer: b.delta }, params: { buffer: io.states ? ctx.withStateSlots(w.scanParams, D * N + D) : w.scanParams },
        B: plane(dtbc, xdblPlanes, 1), C: plane(dtbc, xdblPlanes, 2), z: plane(b.proj, projPlanes, 1), states: io.states,
        out: { buffer: b.scanOut }, ends: b.scratch.ends, carried: b.scratch.carried,
      }),
      // out_proj reads the gated half of [y | gated | states].
      ...tail.dispatches,
    ];
    return {
      dispatches,
      sources: {
        ...streamSources(io, L, H),
        z: { range: plane(b.proj, projPlanes, 1), shape: [L, D] },
        u: { range: whole(b.u, L * D), shape: [L, D] },
        delta: { range: whole(b.delta, L * D), shape: [L, D] },
        B: { range: plane(dtbc, xdblPlanes, 1), shape: [L, N] },
        C: { range: plane(dtbc, xdblPlanes, 2), shape: [L, N] },
        y: { range: whole(b.scanOut, L * D), shape: [L, D] },
        ...(io.states ? { h: { range: { buffer: b.scanOut, offset: 4 * 2 * L * D, size: 4 * T * D * N }, shape: [T, D, N] } } : {}),
        ...(tail.out ? { out: tail.out } : {}),
      },
    };
  },
};
