/**
 * Timing helpers for the benchmarks: warm-up first (shader compilation, JIT), then the median
 * of several runs. GPU work is timed end to end, synchronised by reading back one value.
 */
import * as tf from '@tensorflow/tfjs-core';

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Waits for every queued GPU command: reading one element forces tfjs to submit and the GPU to finish. */
export async function settle(t: tf.Tensor): Promise<void> {
  const one = tf.tidy(() => tf.slice(tf.reshape(t, [-1]), 0, 1));
  await one.data();
  one.dispose();
}

export interface Timed {
  /** Median wall milliseconds per call. */
  readonly ms: number;
  /** Every repetition's per-call milliseconds. */
  readonly runs: number[];
  /** Calls queued back to back per repetition. */
  readonly batch: number;
}

/**
 * Times `call` (which returns the tensors it made): `batch` calls back to back, then one sync;
 * per-call time = repetition time / batch. The batch grows until a repetition lasts ~`targetMs`,
 * so dispatch-sized kernels are not measured by the sync's round trip.
 */
export async function timeTensorCall(call: () => tf.Tensor[], options: { reps?: number; targetMs?: number; maxBatch?: number } = {}): Promise<Timed> {
  const { reps = 5, targetMs = 100, maxBatch = 50 } = options;
  const once = async (batch: number) => {
    const t0 = performance.now();
    let last: tf.Tensor[] = [];
    for (let i = 0; i < batch; i++) {
      tf.dispose(last);
      last = call();
    }
    await settle(last[0]);
    tf.dispose(last);
    return (performance.now() - t0) / batch;
  };
  await once(1); // warm-up: compiles the pipelines
  const first = await once(1);
  const batch = Math.max(1, Math.min(maxBatch, Math.round(targetMs / Math.max(first, 1e-3))));
  const runs: number[] = [];
  for (let r = 0; r < reps; r++) runs.push(await once(batch));
  return { ms: median(runs), runs, batch };
}

/** GPU time of the programs `call` records (timestamp queries), median of `reps`; undefined without timestamps. */
export async function gpuKernelMs(call: () => tf.Tensor[], reps = 3): Promise<number | undefined> {
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const info = await tf.time(() => tf.dispose(call()));
    if (typeof info.kernelMs !== 'number' || !(info.kernelMs > 0)) return undefined;
    times.push(info.kernelMs);
  }
  return median(times);
}

export async function timeAsync(fn: () => Promise<void>, reps: number): Promise<Timed> {
  const runs: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    runs.push(performance.now() - t0);
  }
  return { ms: median(runs), runs, batch: 1 };
}
