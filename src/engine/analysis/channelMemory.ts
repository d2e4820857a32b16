/**
 * Each channel's effective memory over a run (issue 13 item 4; LongMamba's local and global
 * channels): how many tokens back a write keeps at least τ of itself, at the channel's mean Δ,
 *
 *   M_d = the m ≥ 0 where mean_n exp(A[d,n] · m · Δ̄_d) = τ,   Δ̄_d = mean over the run of Δ_t[d],
 *
 * with Retention's mean over the channel's states (retention.ts: R_d(s→t) = mean_n exp(A[d,n] ·
 * Σ_{s<k≤t} Δ_k[d])). Why the mean Δ: over m tokens the sum is m·Δ̄_d on average over the run, so
 * M_d is the lifetime of a write at the channel's typical pace. The lifetime at each position would
 * need every channel's window of prefix sums, and a global channel's window is the whole run
 * (O(L·D)); Δ̄ needs D sums. M_d is infinite when R_d never falls to τ: Δ̄_d = 0, or at least τ of
 * the channel's states have A = 0.
 *
 * A channel is global when M_d ≥ the horizon (default 2048 tokens, the context the published
 * Mamba checkpoints were trained at: a global channel carries a write past it), else local.
 * Mamba-2: a "channel" is a head (its scalar A and Δ), as in the retention views.
 */
import { InputError } from '../errors';
import type { Tensor } from '../tensor';
import { checkThreshold, decayRates } from './retention';

export const DEFAULT_HORIZON = 2048;

export interface ChannelMemoryReport {
  readonly threshold: number;
  readonly horizon: number;
  /** M_d per channel in tokens (Infinity: never falls to τ). */
  readonly memory: Float64Array;
  /** Δ̄_d per channel. */
  readonly meanDelta: Float64Array;
  /** Channels with M_d ≥ horizon. */
  readonly global: number;
  readonly local: number;
}

export class ChannelMemory {
  readonly channels: number;
  private readonly sums: Float64Array;
  private rows = 0;

  /** A [D, N] or [D] (−exp(A_log)), as Retention takes it. */
  constructor(private readonly A: Tensor, private readonly source = 'channel memory') {
    this.channels = A.shape[0];
    decayRates(A, this.channels, source); // refused here, before any row, not at finish
    this.sums = new Float64Array(this.channels);
  }

  /** The next rows of Δ, [T, D] (after softplus). */
  push(delta: Tensor): void {
    const D = this.channels;
    if (delta.shape.length !== 2 || delta.shape[1] !== D) throw new InputError(this.source, `delta rows must be [T, ${D}]; got [${delta.shape.join(', ')}]`);
    const data = delta.data as ArrayLike<number>;
    for (let i = 0; i < data.length; i++) this.sums[i % D] += Number(data[i]);
    this.rows += delta.shape[0];
  }

  finish(threshold: number, horizon = DEFAULT_HORIZON): ChannelMemoryReport {
    if (this.rows === 0) throw new RangeError('channel memory needs at least one row of Δ');
    return memoryAtMeanDelta(this.A, this.sums.map((s) => s / this.rows), threshold, horizon, this.source);
  }
}

/** Each channel's effective memory from its mean Δ (a run's, however it was averaged: the panel's long runs take it from their per-block means). */
export function memoryAtMeanDelta(A: Tensor, meanDelta: Float64Array, threshold: number, horizon = DEFAULT_HORIZON, source = 'channel memory'): ChannelMemoryReport {
  checkThreshold(threshold);
  if (!(horizon > 0)) throw new RangeError(`the horizon must be > 0 tokens; got ${horizon}`);
  const D = meanDelta.length;
  const { a, N } = decayRates(A, D, source);
  const memory = new Float64Array(D);
  let global = 0;
  for (let d = 0; d < D; d++) {
    memory[d] = tokensUntil(threshold, Array.from({ length: N }, (_, n) => -a[d * N + n] * meanDelta[d]));
    if (memory[d] >= horizon) global++;
  }
  return { threshold, horizon, memory, meanDelta, global, local: D - global };
}

/** The m ≥ 0 where mean_n exp(−rates[n]·m) = τ (rates ≥ 0): closed form for one rate, else bisection on the decreasing mean. */
export function tokensUntil(threshold: number, rates: readonly number[]): number {
  const positive = rates.filter((r) => r > 0);
  const still = (rates.length - positive.length) / rates.length; // the share that never decays
  if (still >= threshold || positive.length === 0) return Infinity;
  if (rates.length === 1) return Math.log(1 / threshold) / rates[0];
  const f = (m: number) => rates.reduce((s, r) => s + Math.exp(-r * m), 0) / rates.length;
  // At m = hi even the slowest positive rate leaves (τ − still) / (1 − still) of its share: f(hi) ≤ τ.
  let lo = 0;
  let hi = Math.log((1 - still) / (threshold - still)) / Math.min(...positive);
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) > threshold) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
