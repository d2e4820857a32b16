/**
 * A layer's Δ and state against position in fixed buckets (issue 13 item 4; Stuffed Mamba's
 * per-position statistics in 512-token buckets): per bucket, the mean and max of Δ over its
 * positions and channels, the mean and max of ‖h_t‖ (Frobenius over the state) when the run gives
 * the states, and the share of its positions that reset the state (the reset events of
 * retention.ts or retentionStream.ts: the step kept less than τ of it). Fed rows as a run
 * produces them, it holds one accumulator per bucket, never the [L, D] rows.
 */
import { InputError } from '../errors';
import type { Tensor } from '../tensor';
import type { ResetEvent } from './retention';

export const DEFAULT_BUCKET = 512;

export interface PositionBucket {
  /** First position of the bucket; it holds `tokens` positions. */
  readonly start: number;
  readonly tokens: number;
  readonly meanDelta: number;
  readonly maxDelta: number;
  /** Reset events among the bucket's positions, over `tokens`. */
  readonly resetShare: number;
  /** ‖h_t‖ over the bucket's positions; null when the run gave no states. */
  readonly meanStateNorm: number | null;
  readonly maxStateNorm: number | null;
}

/** ‖h_t‖ per row of states [T, …] (the Frobenius norm of each token's state). */
export function stateNorms(h: Tensor): Float64Array {
  const T = h.shape[0];
  const size = T ? h.data.length / T : 0;
  const data = h.data as ArrayLike<number>;
  return Float64Array.from({ length: T }, (_, t) => {
    let s = 0;
    for (let i = t * size; i < (t + 1) * size; i++) s += Number(data[i]) ** 2;
    return Math.sqrt(s);
  });
}

export class PositionBuckets {
  private readonly sum: number[] = [];
  private readonly max: number[] = [];
  private readonly counts: number[] = [];
  private readonly normSum: number[] = [];
  private readonly normMax: number[] = [];
  private normRows = 0;
  private position = 0;

  constructor(private readonly channels: number, readonly bucket = DEFAULT_BUCKET, private readonly source = 'position buckets') {
    if (!Number.isInteger(bucket) || bucket < 1) throw new RangeError(`a bucket must be a positive number of tokens; got ${bucket}`);
  }

  /**
   * The next rows of Δ, [T, D] (after softplus), at the positions after the last push, with the
   * norms of the states after them (stateNorms of h [T, …]) when the run has them: given with
   * every push or with none.
   */
  push(delta: Tensor, norms?: ArrayLike<number>): void {
    const D = this.channels;
    if (delta.shape.length !== 2 || delta.shape[1] !== D) throw new InputError(this.source, `delta rows must be [T, ${D}]; got [${delta.shape.join(', ')}]`);
    if (norms && norms.length !== delta.shape[0]) throw new RangeError(`${norms.length} state norms for ${delta.shape[0]} rows of Δ`);
    if (norms) this.normRows += norms.length;
    const data = delta.data as ArrayLike<number>;
    for (let row = 0; row < delta.shape[0]; row++, this.position++) {
      const b = Math.floor(this.position / this.bucket);
      if (this.counts.length <= b) {
        this.sum.push(0);
        this.max.push(-Infinity);
        this.counts.push(0);
        this.normSum.push(0);
        this.normMax.push(-Infinity);
      }
      if (norms) {
        this.normSum[b] += norms[row];
        if (norms[row] > this.normMax[b]) this.normMax[b] = norms[row];
      }
      for (let d = 0; d < D; d++) {
        const v = Number(data[row * D + d]);
        this.sum[b] += v;
        if (v > this.max[b]) this.max[b] = v;
      }
      this.counts[b]++;
    }
  }

  /** The buckets, with the share of each one's positions among `resets` (the layer's reset events at τ). */
  finish(resets: readonly ResetEvent[]): PositionBucket[] {
    if (this.normRows !== 0 && this.normRows !== this.position) throw new RangeError(`state norms for ${this.normRows} of ${this.position} positions: give them with every push or with none`);
    const norms = this.normRows > 0;
    const perBucket = this.counts.map(() => 0);
    for (const r of resets) perBucket[Math.floor(r.index / this.bucket)]++;
    return this.counts.map((tokens, b) => ({
      start: b * this.bucket,
      tokens,
      meanDelta: this.sum[b] / (tokens * this.channels),
      maxDelta: this.max[b],
      resetShare: perBucket[b] / tokens,
      meanStateNorm: norms ? this.normSum[b] / tokens : null,
      maxStateNorm: norms ? this.normMax[b] : null,
    }));
  }
}

export interface BucketMean {
  readonly start: number;
  readonly tokens: number;
  readonly mean: number;
}

/** The mean of a per-position series (values[t] at position t, e.g. the next-token loss) per `bucket` positions. */
export function bucketMeans(values: ArrayLike<number>, bucket = DEFAULT_BUCKET): BucketMean[] {
  const out: BucketMean[] = [];
  for (let start = 0; start < values.length; start += bucket) {
    const end = Math.min(values.length, start + bucket);
    let sum = 0;
    for (let t = start; t < end; t++) sum += values[t];
    out.push({ start, tokens: end - start, mean: sum / (end - start) });
  }
  return out;
}

/**
 * A statistic against position in one line, "2.1e-6 at 0 → 3.4e-6 at 32256 (lowest 1.0e-6 at 512,
 * highest 4.0e-6 at 20480; 64 buckets)": the first and last buckets and the extremes (a NaN
 * bucket counts as the highest: a non-finite value is the worst error there is).
 */
export function trendText(points: readonly { readonly start: number; readonly value: number }[], format: (v: number) => string): string {
  const first = points[0], last = points[points.length - 1];
  const higher = (a: number, b: number) => Number.isNaN(a) || a > b;
  const low = points.reduce((a, b) => (higher(a.value, b.value) ? b : a)), high = points.reduce((a, b) => (higher(b.value, a.value) && !Number.isNaN(a.value) ? b : a));
  const at = (p: { start: number; value: number }) => `${format(p.value)} at ${p.start}`;
  return `${at(first)} → ${at(last)} (lowest ${at(low)}, highest ${at(high)}; ${points.length} buckets)`;
}
