/**
 * Retention: how much of token s's write is still in a layer's state at position t.
 *
 *   R(s→t) = mean over channels d and states n of exp(A[d,n] · Σ_{s<k≤t} Δ_k[d])
 *
 * Token s is forgotten at the first t ≥ s with R(s→t) < τ, else retained to the end.
 * The sum is a difference of prefix sums Q_t − Q_s (Q_t = Σ_{k≤t} Δ_k), so the whole analysis
 * keeps O(L·D) numbers, never an L×L×D tensor.
 *
 * Mamba-2 has one scalar A per head and Δ per head: pass A as [heads] and delta as [L, heads].
 * Every channel of a head shares that decay, so the mean over heads equals the mean over the
 * D = heads·P channels and the "channel" of a view is a head.
 */
import { InputError } from '../errors';
import type { LoadedModel } from '../model/graph';
import { negExp } from '../reference/scan';
import type { Tensor } from '../tensor';
import { scanOf } from '../layers/kind';

export const DEFAULT_THRESHOLD = 0.05;

/** Which decays are averaged: all of them, one channel d (mean over n), or one state n (mean over d). */
export interface RetentionView {
  readonly channel?: number;
  readonly state?: number;
}

export interface ResetEvent {
  /** Position t whose own step kept less than τ of the state. */
  readonly index: number;
  /** mean_{d,n} exp(Δ_t·A): the share of the previous state that survived step t. */
  readonly kept: number;
}

/** The state-decay parameters of one layer, as the scan uses them. */
export interface LayerDecay {
  /** A = −exp(A_log): [D, N] (Mamba-1) or [heads] (Mamba-2). */
  readonly A: Tensor<Float64Array>;
  /** B/C groups (Mamba-2); 1 for Mamba-1. */
  readonly groups: number;
}

/** A of layer `layer`, read from the model's A_log. */
export function layerDecay(model: LoadedModel<'float64'>, layer: number): LayerDecay {
  const layers = model.layers;
  if (!Number.isInteger(layer) || layer < 0 || layer >= layers.length) {
    throw new RangeError(`layer ${layer} is outside a ${layers.length}-layer model`);
  }
  const { aLog, groups } = scanOf(layers[layer]);
  return { A: negExp(aLog), groups };
}

export class Retention {
  private constructor(
    /** Q_t[d] = Σ_{k≤t} Δ_k[d], [L, D]. */
    private readonly prefix: Float64Array,
    readonly length: number,
    private readonly A: Float64Array,
    readonly channels: number,
    readonly states: number,
  ) {}

  /**
   * delta [L, D] (Δ after softplus) and A [D, N] or [D] (already −exp(A_log)). Δ ≥ 0 and A ≤ 0 is
   * what makes R non-increasing in t; both are checked because the forgottenAt sweep relies on it.
   */
  static fromLayer(delta: Tensor, A: Tensor, source = 'retention'): Retention {
    if (delta.shape.length !== 2) throw new InputError(source, `delta must be [L, D]; got [${delta.shape.join(', ')}]`);
    const [L, D] = delta.shape;
    if (A.shape[0] !== D || A.shape.length > 2 || A.shape.length < 1) {
      throw new InputError(source, `A must be [${D}, N] or [${D}] to match delta [${L}, ${D}]; got [${A.shape.join(', ')}]`);
    }
    const { a, N } = decayRates(A, D, source);
    const prefix = new Float64Array(L * D);
    for (let t = 0; t < L; t++) prefixRow(delta.data, t, D, t > 0 ? prefix : null, t - 1, prefix, t, t, source);
    return new Retention(prefix, L, a, D, N);
  }

  /** R(s→t) for s ≤ t under `view` (1 when s = t: nothing has decayed yet). */
  between(s: number, t: number, view: RetentionView = {}): number {
    this.checkPair(s, t);
    this.checkView(view);
    if (s === t) return 1;
    return this.meanDecay(s, t, view);
  }

  /**
   * For every token s, the first t with R(s→t) < τ, or −1 when s is retained to the end.
   * forgottenAt is non-decreasing in s (a later write has decayed less by any t), so one forward
   * sweep of t serves every s: at most 2L evaluations of R.
   */
  forgottenAt(threshold: number, view: RetentionView = {}): Int32Array {
    checkThreshold(threshold);
    this.checkView(view);
    const L = this.length;
    const out = new Int32Array(L).fill(-1);
    let t = 0;
    for (let s = 0; s < L; s++) {
      if (t < s) t = s;
      while (t < L && (t === s ? 1 : this.meanDecay(s, t, view)) >= threshold) t++;
      if (t === L) break; // retained here, so every later token is retained too
      out[s] = t;
    }
    return out;
  }

  /** R(s→L−1) for every s. */
  atEnd(view: RetentionView = {}): Float64Array {
    this.checkView(view);
    const L = this.length;
    const out = new Float64Array(L);
    for (let s = 0; s < L; s++) out[s] = s === L - 1 ? 1 : this.meanDecay(s, L - 1, view);
    return out;
  }

  /** R as a lower-triangular [L, L] matrix, row t, column s (0 above the diagonal), for heat maps. */
  matrix(view: RetentionView = {}): Tensor<Float64Array> {
    this.checkView(view);
    const L = this.length;
    const out = new Float64Array(L * L);
    for (let t = 0; t < L; t++) {
      out[t * L + t] = 1;
      for (let s = 0; s < t; s++) out[t * L + s] = this.meanDecay(s, t, view);
    }
    return { shape: [L, L], data: out };
  }

  /** Positions t where mean_{d,n} exp(Δ_t·A) < τ: the step at t wiped the state. */
  resetEvents(threshold: number): ResetEvent[] {
    checkThreshold(threshold);
    const events: ResetEvent[] = [];
    for (let t = 0; t < this.length; t++) {
      const kept = this.meanDecay(t - 1, t, {});
      if (kept < threshold) events.push({ index: t, kept });
    }
    return events;
  }

  /** mean exp(A·(Q_t − Q_s)) over the view; s = −1 means "from before the first token". */
  private meanDecay(s: number, t: number, view: RetentionView): number {
    return meanDecayOfRows(this.A, this.channels, this.states, view, this.prefix, t, s >= 0 ? this.prefix : null, s);
  }

  private checkPair(s: number, t: number): void {
    if (!Number.isInteger(s) || !Number.isInteger(t) || s < 0 || t < s || t >= this.length) {
      throw new RangeError(`retention needs 0 ≤ s ≤ t < ${this.length}; got s=${s}, t=${t}`);
    }
  }

  private checkView(view: RetentionView): void {
    checkView(view, this.channels, this.states);
  }
}

export function checkView(view: RetentionView, channels: number, states: number): void {
  if (view.channel !== undefined && !(Number.isInteger(view.channel) && view.channel >= 0 && view.channel < channels)) {
    throw new RangeError(`channel ${view.channel} is outside 0..${channels - 1}`);
  }
  if (view.state !== undefined && !(Number.isInteger(view.state) && view.state >= 0 && view.state < states)) {
    throw new RangeError(`state ${view.state} is outside 0..${states - 1}`);
  }
}

/**
 * A as the retention reads it: checked ≤ 0 (R is non-increasing in t only then, which the
 * forgottenAt sweep relies on), as float64, with its states per channel N. [D, N] or [D].
 */
export function decayRates(A: Tensor, D: number, source: string): { a: Float64Array; N: number } {
  if (A.shape[0] !== D || A.shape.length > 2 || A.shape.length < 1) {
    throw new InputError(source, `A must be [${D}, N] or [${D}] to match delta's ${D} columns; got [${A.shape.join(', ')}]`);
  }
  const N = A.shape.length === 2 ? A.shape[1] : 1;
  const a = Float64Array.from(A.data as ArrayLike<number>, Number);
  for (let i = 0; i < a.length; i++) {
    if (!(a[i] <= 0)) throw new InputError(source, `A[${i}] = ${a[i]} is not ≤ 0 (pass A = −exp(A_log), not A_log)`);
  }
  return { a, N };
}

/**
 * One row of the prefix sums: Q_t = Q_{t−1} + Δ_t, row `row` of `delta` [·, D] (checked ≥ 0: Δ
 * comes after softplus) into row `outRow` of `out`, from row `prevRow` of `prev` (null at t = 0).
 * `t` is the row's position in the sequence, for the message. Retention and the streamed sweep
 * (retentionStream.ts) both build Q with it, so their sums are the same numbers.
 */
export function prefixRow(delta: ArrayLike<number | bigint>, row: number, D: number, prev: Float64Array | null, prevRow: number, out: Float64Array, outRow: number, t: number, source: string): void {
  for (let d = 0; d < D; d++) {
    const v = Number(delta[row * D + d]);
    if (!(v >= 0)) throw new InputError(source, `delta[${t}, ${d}] = ${v} is not ≥ 0 (Δ comes after softplus)`);
    out[outRow * D + d] = (prev ? prev[prevRow * D + d] : 0) + v;
  }
}

/**
 * R = mean over the view's channels d and states n of exp(A[d,n]·(Q_t − Q_s)[d]): Q_t is row `t`
 * of `qt`, Q_s row `s` of `qs`, or 0 when qs is null (from before the first token). The one
 * formula of retention: Retention reads both rows from its [L, D] prefix sums, the streamed sweep
 * from its window, so the two give the same numbers bit for bit.
 */
export function meanDecayOfRows(A: Float64Array, D: number, N: number, view: RetentionView, qt: Float64Array, t: number, qs: Float64Array | null, s: number): number {
  const d0 = view.channel ?? 0, d1 = view.channel === undefined ? D : d0 + 1;
  const n0 = view.state ?? 0, n1 = view.state === undefined ? N : n0 + 1;
  let sum = 0;
  for (let d = d0; d < d1; d++) {
    const span = qt[t * D + d] - (qs ? qs[s * D + d] : 0);
    for (let n = n0; n < n1; n++) sum += Math.exp(A[d * N + n] * span);
  }
  return sum / ((d1 - d0) * (n1 - n0));
}

export function checkThreshold(threshold: number): void {
  if (!(threshold > 0 && threshold <= 1)) throw new RangeError(`the retention threshold τ must be in (0, 1]; got ${threshold}`);
}
