/**
 * Where a native WebGPU forward's time goes: every dispatch of a plan in a compute pass of its
 * own with GPU timestamps at its start and end (the forward's own encoding, encodeForward, with
 * a timed pass per dispatch), summed per kind of kernel over the layers, with the FLOPs and the
 * bytes each kernel must move, so the table reads as a roofline: achieved TFLOP/s and GB/s
 * against the H200's fp32 peak and HBM bandwidth. And the CPU time to encode and submit one
 * forward, the issue's ≤ 2 ms target.
 */
import type { MambaConfig } from '../src/engine/model/config';
import { encodeForward } from '../src/engine/webgpu/forward';
import { record, type Dispatch } from '../src/engine/webgpu/kernel';
import type { ForwardPlan } from '../src/engine/webgpu/plan';
import { predictionWords } from '../src/engine/webgpu/topK';
import { median } from './timing';

/** H200 SXM: fp32 FMA throughput without tensor cores, and HBM3e bandwidth. */
export const H200 = { fp32Tflops: 67, hbmTBs: 4.8 };

export interface KernelTime {
  /** The dispatch's label without its layer or row block: "in_proj", "scan output", "lm_head". */
  readonly kernel: string;
  readonly count: number;
  readonly ms: number;
  readonly flops?: number;
  readonly bytes?: number;
}

/** "layer 3 in_proj" → "in_proj"; "lm_head rows 0…" → "lm_head"; "top-10 rows 512…" → "top-10". */
export function kernelOf(label: string): string {
  return label.replace(/^layer \d+ /, '').replace(/ rows \d+…$/, '');
}

/** GPU time per kernel of one forward (median over `reps` profiled forwards). */
export async function profileForward(plan: ForwardPlan, ids: Int32Array<ArrayBuffer>, reps: number): Promise<KernelTime[]> {
  const { device } = plan;
  if (!device.features.has('timestamp-query')) throw new Error('the device has no timestamp-query feature');
  const dispatches: Dispatch[] = [];
  const count = [...plan.embed, ...plan.layers.flat(), ...plan.head.flatMap((s) => s.dispatches)].length;
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2 * count });
  const resolved = device.createBuffer({ size: 16 * count, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 16 * count, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const perRun: number[][] = [];
  try {
    for (let r = 0; r < reps; r++) {
      device.queue.writeBuffer(plan.ids, 0, ids);
      dispatches.length = 0;
      const encoder = device.createCommandEncoder();
      encodeForward(plan, encoder, (enc, run) => {
        for (const d of run) {
          const i = dispatches.push(d) - 1;
          const pass = enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
          record(pass, [d]);
          pass.end();
        }
      });
      encoder.resolveQuerySet(querySet, 0, 2 * count, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, read, 0, 16 * count);
      device.queue.submit([encoder.finish()]);
      await read.mapAsync(GPUMapMode.READ);
      const t = new BigInt64Array(read.getMappedRange().slice(0));
      read.unmap();
      perRun.push(dispatches.map((_, i) => Number(t[2 * i + 1] - t[2 * i]) / 1e6));
    }
  } finally {
    querySet.destroy();
    resolved.destroy();
    read.destroy();
  }
  const byKernel = new Map<string, { count: number; ms: number[] }>();
  perRun.forEach((times, r) =>
    dispatches.forEach((d, i) => {
      const k = kernelOf(d.label);
      const entry = byKernel.get(k) ?? { count: 0, ms: Array<number>(reps).fill(0) };
      if (r === 0) entry.count++;
      entry.ms[r] += times[i];
      byKernel.set(k, entry);
    }),
  );
  // The roofline costs are the pure Mamba layers'; a hybrid's kernels are reported by time alone.
  const config = plan.weights.config;
  const cost = config.arch === 'hybrid' ? () => ({}) : kernelCosts(config, plan.tokens, plan.k);
  return [...byKernel].map(([kernel, e]) => ({ kernel, count: e.count, ms: median(e.ms), ...cost(kernel, e.count) }));
}

/**
 * FLOPs and bytes of each kernel, summed over its dispatches: the work it must do and the least
 * it must move (each input read once, each output written once, f32).
 */
function kernelCosts(c: MambaConfig, L: number, k: number): (kernel: string, count: number) => { flops?: number; bytes?: number } {
  const H = c.dModel, V = c.vocabSize, D = c.dInner, F = 4;
  const matmul = (M: number, N: number, K: number) => ({ flops: 2 * M * N * K, bytes: F * (M * K + N * K + M * N) });
  const per: Record<string, { flops: number; bytes: number }> = {
    embedding: { flops: 0, bytes: F * 2 * L * H },
    norm: { flops: 3 * L * H, bytes: F * (2 * L * H + H) },
    norm_f: { flops: 3 * L * H, bytes: F * (2 * L * H + H) },
    out_proj: matmul(L, H, D),
    residual: { flops: L * H, bytes: F * 3 * L * H },
    lm_head: matmul(L, V, H),
    [`top-${k}`]: { flops: 2 * L * V, bytes: F * (L * V + predictionWords(L, k)) },
  };
  if (c.arch === 'mamba1') {
    const N = c.dState, R = c.dtRank;
    Object.assign(per, {
      in_proj: matmul(L, 2 * D, H),
      conv1d: { flops: 2 * L * D * c.dConv, bytes: F * (2 * L * D + D * c.dConv) },
      x_proj: matmul(L, R + 2 * N, D),
      dt_proj: matmul(L, D, R),
      // u, Δ, z, B, C in; y and the gated y out; ~7 flops per state per token (exp, 2 FMA, C·h).
      'scan output': { flops: 7 * L * D * N, bytes: F * (3 * L * D + 2 * L * N + 2 * L * D) },
    });
  } else {
    const GN = c.nGroups * c.dState, convDim = D + 2 * GN;
    Object.assign(per, {
      in_proj: matmul(L, D + convDim + c.nHeads, H),
      conv1d: { flops: 2 * L * convDim * c.dConv, bytes: F * (2 * L * convDim) },
      dt: { flops: 4 * L * c.nHeads, bytes: F * 2 * L * c.nHeads },
      'scan output': { flops: 5 * L * D * c.dState, bytes: F * (2 * L * D + L * c.nHeads + 2 * L * GN) },
      'gated norm': { flops: 6 * L * D, bytes: F * 3 * L * D },
    });
  }
  return (kernel, count) => {
    // A split-K product's partials do the product's work; the sum that follows is left uncounted.
    const p = per[kernel.replace(/ partials$/, '')];
    // lm_head and top-k run in row blocks: their dispatches share the whole cost.
    const whole = kernel === 'lm_head' || kernel.startsWith('top-') || kernel === 'embedding' || kernel === 'norm_f';
    return p ? { flops: p.flops * (whole ? 1 : count), bytes: p.bytes * (whole ? 1 : count) } : {};
  };
}

/** CPU milliseconds to write the ids, encode one forward and submit it (median over `reps`), the GPU drained between. */
export async function encodeTime(plan: ForwardPlan, ids: Int32Array<ArrayBuffer>, reps: number): Promise<number> {
  const { device } = plan;
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    device.queue.writeBuffer(plan.ids, 0, ids);
    const encoder = device.createCommandEncoder();
    encodeForward(plan, encoder);
    device.queue.submit([encoder.finish()]);
    times.push(performance.now() - t0);
    await device.queue.onSubmittedWorkDone();
  }
  return median(times);
}
