/**
 * One Mamba block as a list of dispatches over plan buffers, and where each internal it can
 * capture lives. The order of operations is the float64 reference forward's
 * (../reference/forward.ts, the oracle), one kernel per step or fused where a step is an
 * epilogue (bias, softplus, residual) or a prologue (the gate of Mamba-2's norm).
 *
 * Mamba-1 (7 dispatches; 9 when the scan is chunked):
 *   RMSNorm → in_proj into planes [x | z] → conv1d + SiLU → u → x_proj into planes [dt | B | C]
 *   → dt_proj + bias + softplus → Δ → scan with D·u and the y·silu(z) gate → out_proj + residual.
 * Mamba-2 (7; 9 chunked):
 *   RMSNorm → in_proj into planes [z | xBC | dt] → conv1d + SiLU into planes [u | B | C]
 *   → clamp(softplus(dt + dt_bias)) → head scan with D·u → RMSNorm(y·silu(z)) per group
 *   → out_proj + residual.
 */
import type { Mamba1Config, Mamba2Config } from '../model/config';
import type { ScanGeometry } from '../kernels/scanShaders';
import { mamba2ConvDim } from '../layers/mamba2/params';
import { convSiluKernel, CONV_THREADS } from './convSilu';
import { dtSoftplusKernel, DT_THREADS } from './dtSoftplus';
import type { BufferRange, Dispatch, KernelCache } from './kernel';
import { matmulKernel, matmulWorkgroups } from './matmul';
import { planeLayout, planeRange } from './planes';
import { rmsNormKernel, rmsNormWorkgroups } from './rmsNorm';
import { scanChunking, scanDispatches, scanScratch } from './selectiveScan';
import type { GpuLayerWeights } from './weights';

/** The internals a plan can copy out, with the names and shapes of ../internals.ts. */
export const CAPTURE_NAMES = ['hidden_in', 'z', 'u', 'delta', 'B', 'C', 'y', 'hidden_out'] as const;
export type CaptureName = (typeof CAPTURE_NAMES)[number];

export interface CaptureSource {
  readonly range: Required<BufferRange>;
  readonly shape: readonly number[];
}

export interface LayerBuild {
  readonly dispatches: readonly Dispatch[];
  readonly sources: Readonly<Record<CaptureName, CaptureSource>>;
}

/** Allocates a storage buffer of `elements` f32 owned by the plan. */
export type Allocate = (label: string, elements: number) => GPUBuffer;

export interface LayerContext {
  readonly cache: KernelCache;
  readonly L: number;
  /** Tokens per scan chunk (≥ L: the fused single pass). */
  readonly chunkLen: number;
  readonly allocate: Allocate;
  /** A CPU implementation: kernels run without workgroup barriers (kernel.ts: cooperativeThreads). */
  readonly software: boolean;
}

const whole = (buffer: GPUBuffer, elements: number): Required<BufferRange> => ({ buffer, offset: 0, size: 4 * elements });
const plane = (buffer: GPUBuffer, layout: ReturnType<typeof planeLayout>, p: number) => planeRange(buffer, layout, p) as Required<BufferRange>;

/** The scan's scratch buffers, shared by every layer (they run one after another). */
function scanScratchBuffers(ctx: LayerContext, g: ScanGeometry) {
  const chunking = scanChunking(ctx.L, ctx.chunkLen);
  const s = scanScratch(g, chunking);
  return {
    chunking,
    ends: s.ends ? { buffer: ctx.allocate('scan chunk ends', s.ends) } : undefined,
    carried: s.carried ? { buffer: ctx.allocate('scan carried states', s.carried) } : undefined,
  };
}

/** Builds every layer; the hidden state alternates between two buffers (layer i reads hidden[i % 2]). */
export function mamba1Layers(ctx: LayerContext, c: Mamba1Config, weights: readonly GpuLayerWeights[], hidden: readonly [GPUBuffer, GPUBuffer]): LayerBuild[] {
  const { cache, L } = ctx;
  const H = c.dModel, D = c.dInner, N = c.dState, R = c.dtRank;
  const projPlanes = planeLayout(L, [D, D]);
  const xdblPlanes = planeLayout(L, [R, N, N]);
  const normed = ctx.allocate('normed', L * H);
  const proj = ctx.allocate('in_proj [x | z]', projPlanes.size);
  const u = ctx.allocate('u', L * D);
  const xdbl = ctx.allocate('x_proj [dt | B | C]', xdblPlanes.size);
  const delta = ctx.allocate('delta', L * D);
  const scanOut = ctx.allocate('scan [y | gated]', 2 * L * D);
  const g: ScanGeometry = { L, channels: D, N, heads: D, headDim: 1, groups: 1, aPerState: true };
  const scratch = scanScratchBuffers(ctx, g);

  return weights.map((w, i) => {
    const [hIn, hOut] = [hidden[i % 2], hidden[(i + 1) % 2]];
    const at = `layer ${i}`;
    const dispatches: Dispatch[] = [
      cache.dispatch(`${at} norm`, rmsNormKernel(false, ctx.software), rmsNormWorkgroups(L, H, H), { X: { buffer: hIn }, Weight: { buffer: w.norm }, result: { buffer: normed } }, { width: H, groupSize: H, eps: c.eps }),
      cache.dispatch(`${at} in_proj`, matmulKernel({ bias: !!w.inProjB, softplus: false, residual: false, planes: [D, D], software: ctx.software }), matmulWorkgroups(L, 2 * D, ctx.software),
        { X: { buffer: normed }, W: { buffer: w.inProjW }, ...(w.inProjB ? { Bias: { buffer: w.inProjB } } : {}), Y: { buffer: proj } }, { M: L, N: 2 * D, K: H, aOffset: 0 }),
      cache.dispatch(`${at} conv1d`, convSiluKernel(c.dConv, !!w.convB, [D]), cache.flatWorkgroups(L * D, CONV_THREADS),
        { X: plane(proj, projPlanes, 0), W: { buffer: w.convW }, ...(w.convB ? { Bias: { buffer: w.convB } } : {}), result: { buffer: u } }, { rows: L, channels: D }),
      cache.dispatch(`${at} x_proj`, matmulKernel({ bias: false, softplus: false, residual: false, planes: [R, N, N], software: ctx.software }), matmulWorkgroups(L, R + 2 * N, ctx.software),
        { X: { buffer: u }, W: { buffer: w.xProjW! }, Y: { buffer: xdbl } }, { M: L, N: R + 2 * N, K: D, aOffset: 0 }),
      cache.dispatch(`${at} dt_proj`, matmulKernel({ bias: true, softplus: true, residual: false, planes: [D], software: ctx.software }), matmulWorkgroups(L, D, ctx.software),
        { X: plane(xdbl, xdblPlanes, 0), W: { buffer: w.dtProjW! }, Bias: { buffer: w.dtProjB! }, Y: { buffer: delta } }, { M: L, N: D, K: R, aOffset: 0 }),
      ...scanDispatches(cache, `${at} scan`, g, scratch.chunking, {
        u: { buffer: u }, delta: { buffer: delta }, params: { buffer: w.scanParams }, B: plane(xdbl, xdblPlanes, 1), C: plane(xdbl, xdblPlanes, 2),
        z: plane(proj, projPlanes, 1), out: { buffer: scanOut }, ends: scratch.ends, carried: scratch.carried,
      }),
      // out_proj reads the gated half of [y | gated]; its epilogue adds the residual stream.
      cache.dispatch(`${at} out_proj`, matmulKernel({ bias: !!w.outProjB, softplus: false, residual: true, planes: [H], software: ctx.software }), matmulWorkgroups(L, H, ctx.software),
        { X: { buffer: scanOut }, W: { buffer: w.outProjW }, ...(w.outProjB ? { Bias: { buffer: w.outProjB } } : {}), Residual: { buffer: hIn }, Y: { buffer: hOut } }, { M: L, N: H, K: D, aOffset: L * D }),
    ];
    return {
      dispatches,
      sources: {
        hidden_in: { range: whole(hIn, L * H), shape: [L, H] },
        z: { range: plane(proj, projPlanes, 1), shape: [L, D] },
        u: { range: whole(u, L * D), shape: [L, D] },
        delta: { range: whole(delta, L * D), shape: [L, D] },
        B: { range: plane(xdbl, xdblPlanes, 1), shape: [L, N] },
        C: { range: plane(xdbl, xdblPlanes, 2), shape: [L, N] },
        y: { range: whole(scanOut, L * D), shape: [L, D] },
        hidden_out: { range: whole(hOut, L * H), shape: [L, H] },
      },
    };
  });
}

export function mamba2Layers(ctx: LayerContext, c: Mamba2Config, weights: readonly GpuLayerWeights[], hidden: readonly [GPUBuffer, GPUBuffer]): LayerBuild[] {
  const { cache, L } = ctx;
  const H = c.dModel, Din = c.dInner, heads = c.nHeads, GN = c.nGroups * c.dState, convDim = mamba2ConvDim(c);
  const projPlanes = planeLayout(L, [Din, convDim, heads]);
  const xbcPlanes = planeLayout(L, [Din, GN, GN]);
  const normed = ctx.allocate('normed', L * H);
  const proj = ctx.allocate('in_proj [z | xBC | dt]', projPlanes.size);
  const xbc = ctx.allocate('conv [u | B | C]', xbcPlanes.size);
  const delta = ctx.allocate('delta', L * heads);
  const y = ctx.allocate('scan y', L * Din);
  const gatedNormed = ctx.allocate('gated norm', L * Din);
  const g: ScanGeometry = { L, channels: Din, N: c.dState, heads, headDim: c.headDim, groups: c.nGroups, aPerState: false };
  const scratch = scanScratchBuffers(ctx, g);
  const [lo, hi] = c.timeStepLimit;
  const projOut = Din + convDim + heads;

  return weights.map((w, i) => {
    const [hIn, hOut] = [hidden[i % 2], hidden[(i + 1) % 2]];
    const at = `layer ${i}`;
    const dispatches: Dispatch[] = [
      cache.dispatch(`${at} norm`, rmsNormKernel(false, ctx.software), rmsNormWorkgroups(L, H, H), { X: { buffer: hIn }, Weight: { buffer: w.norm }, result: { buffer: normed } }, { width: H, groupSize: H, eps: c.eps }),
      cache.dispatch(`${at} in_proj`, matmulKernel({ bias: !!w.inProjB, softplus: false, residual: false, planes: [Din, convDim, heads], software: ctx.software }), matmulWorkgroups(L, projOut, ctx.software),
        { X: { buffer: normed }, W: { buffer: w.inProjW }, ...(w.inProjB ? { Bias: { buffer: w.inProjB } } : {}), Y: { buffer: proj } }, { M: L, N: projOut, K: H, aOffset: 0 }),
      cache.dispatch(`${at} conv1d`, convSiluKernel(c.dConv, !!w.convB, [Din, GN, GN]), cache.flatWorkgroups(L * convDim, CONV_THREADS),
        { X: plane(proj, projPlanes, 1), W: { buffer: w.convW }, ...(w.convB ? { Bias: { buffer: w.convB } } : {}), result: { buffer: xbc } }, { rows: L, channels: convDim }),
      // The WGSL spec lets a shader assume no infinities: an unbounded limit is the largest f32.
      cache.dispatch(`${at} dt`, dtSoftplusKernel(), cache.flatWorkgroups(L * heads, DT_THREADS),
        { Dt: plane(proj, projPlanes, 2), DtBias: { buffer: w.dtBias! }, result: { buffer: delta } }, { total: L * heads, heads, lo, hi: Math.min(hi, 3.4e38) }),
      ...scanDispatches(cache, `${at} scan`, g, scratch.chunking, {
        u: plane(xbc, xbcPlanes, 0), delta: { buffer: delta }, params: { buffer: w.scanParams }, B: plane(xbc, xbcPlanes, 1), C: plane(xbc, xbcPlanes, 2),
        out: { buffer: y }, ends: scratch.ends, carried: scratch.carried,
      }),
      cache.dispatch(`${at} gated norm`, rmsNormKernel(true, ctx.software), rmsNormWorkgroups(L, Din, Din / c.nGroups),
        { Y: { buffer: y }, Z: plane(proj, projPlanes, 0), Weight: { buffer: w.gatedNorm! }, result: { buffer: gatedNormed } }, { width: Din, groupSize: Din / c.nGroups, eps: c.eps }),
      cache.dispatch(`${at} out_proj`, matmulKernel({ bias: !!w.outProjB, softplus: false, residual: true, planes: [H], software: ctx.software }), matmulWorkgroups(L, H, ctx.software),
        { X: { buffer: gatedNormed }, W: { buffer: w.outProjW }, ...(w.outProjB ? { Bias: { buffer: w.outProjB } } : {}), Residual: { buffer: hIn }, Y: { buffer: hOut } }, { M: L, N: H, K: Din, aOffset: 0 }),
    ];
    return {
      dispatches,
      sources: {
        hidden_in: { range: whole(hIn, L * H), shape: [L, H] },
        z: { range: plane(proj, projPlanes, 0), shape: [L, Din] },
        u: { range: plane(xbc, xbcPlanes, 0), shape: [L, Din] },
        delta: { range: whole(delta, L * heads), shape: [L, heads] },
        B: { range: plane(xbc, xbcPlanes, 1), shape: [L, GN] },
        C: { range: plane(xbc, xbcPlanes, 2), shape: [L, GN] },
        y: { range: whole(y, L * Din), shape: [L, Din] },
        hidden_out: { range: whole(hOut, L * H), shape: [L, H] },
      },
    };
  });
}
