/** Timing helpers for the benchmarks: the median of several runs, after the caller's warm-up. */

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface Timed {
  /** Median wall milliseconds per call. */
  readonly ms: number;
  /** Every repetition's milliseconds. */
  readonly runs: number[];
}

export async function timeAsync(fn: () => Promise<void>, reps: number): Promise<Timed> {
  const runs: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    runs.push(performance.now() - t0);
  }
  return { ms: median(runs), runs };
}
