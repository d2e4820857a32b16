/**
 * Retention streamed: the same forgottenAt, reset events and R(s→L−1) as Retention (retention.ts)
 * on Δ rows that arrive chunk by chunk, so `forgotten` at 128k tokens (issue 13) never holds
 * [L, D] of Δ or of its prefix sums. Why it can: the forgottenAt sweep only ever looks at
 * R(s→t) for the current token s and the current t, and t − s is s's lifetime; a reset event at t
 * reads Q_{t−1} and Q_t; and R(s→L−1) needs every Q_s but only once Q_{L−1} is known, so the
 * caller keeps the prefix rows push returns somewhere cheap (the CLI spills them to a temp file)
 * and hands them back to atEnd in blocks. So what is held is the window Q_s..Q_t ([lifetime, D]).
 *
 * Exactness: Q is built with Retention's prefixRow (the same running sum, so the same numbers),
 * and every R is Retention's meanDecayOfRows on the same (s, t) pairs in the same order, so the
 * indices are identical and the values bit for bit equal to Retention.fromLayer's.
 */
import { InputError } from '../errors';
import type { Tensor } from '../tensor';
import { checkThreshold, checkView, decayRates, meanDecayOfRows, prefixRow, type ResetEvent, type RetentionView } from './retention';

export interface RetentionStreamOptions {
  /** Refuse (`onWindowLimit`'s error) when a token stays retained over more than this many rows: the window is that many rows of D float64. */
  readonly maxWindowRows?: number;
  /** The error thrown at maxWindowRows; default a RangeError. */
  readonly onWindowLimit?: (rows: number, token: number) => Error;
}

export class RetentionStream {
  readonly channels: number;
  readonly states: number;
  private readonly A: Float64Array;
  /** forgottenAt[s]: the first t with R(s→t) < τ, −1 while (or when) s is retained. */
  private readonly forgotten: Int32Array;
  private readonly resets: ResetEvent[] = [];
  /** Ring of prefix rows Q_s..Q_t: `count` rows from slot `head`, the first being Q_s. */
  private ring: Float64Array;
  private capacity: number;
  private head = 0;
  private count = 0;
  /** Q of the last row received (Q_{t}), for the next row's reset event and for atEnd. */
  private readonly last: Float64Array;
  /** Rows received. */
  private received = 0;
  /** The token the sweep is on. */
  private s = 0;

  /** A [D, N] or [D] (−exp(A_log)); `length`: the rows that will arrive. */
  constructor(
    A: Tensor,
    readonly length: number,
    private readonly threshold: number,
    private readonly view: RetentionView = {},
    private readonly source = 'retention',
    private readonly options: RetentionStreamOptions = {},
  ) {
    checkThreshold(threshold);
    const D = A.shape[0];
    const { a, N } = decayRates(A, D, source);
    this.A = a;
    this.channels = D;
    this.states = N;
    checkView(view, D, N);
    if (!Number.isInteger(length) || length < 1) throw new RangeError(`a streamed retention needs at least one row; got ${length}`);
    this.forgotten = new Int32Array(length).fill(-1);
    this.capacity = Math.max(1, Math.min(64, length, options.maxWindowRows ?? Infinity));
    this.ring = new Float64Array(this.capacity * D);
    this.last = new Float64Array(D);
  }

  /** Rows of prefix sums held now (the window). */
  get windowRows(): number {
    return this.count;
  }

  /**
   * The next rows of Δ, [T, D]: advances the sweep over them and returns their prefix sums
   * Q [T, D] (a new array; atEnd needs them back once the last row is in).
   */
  push(delta: Tensor): Float64Array {
    const D = this.channels;
    if (delta.shape.length !== 2 || delta.shape[1] !== D) throw new InputError(this.source, `delta rows must be [T, ${D}]; got [${delta.shape.join(', ')}]`);
    const T = delta.shape[0];
    if (this.received + T > this.length) throw new RangeError(`${this.received + T} rows pushed into a streamed retention of ${this.length}`);
    const q = new Float64Array(T * D);
    for (let r = 0; r < T; r++) {
      const t = this.received;
      prefixRow(delta.data, r, D, t > 0 ? this.last : null, 0, q, r, t, this.source);
      this.step(q, r, t);
      this.last.set(q.subarray(r * D, (r + 1) * D));
      this.received++;
    }
    return q;
  }

  /** forgottenAt (−1: retained to the end) and the reset events, once every row is in. */
  finish(): { forgottenAt: Int32Array; resets: ResetEvent[] } {
    this.checkComplete();
    return { forgottenAt: this.forgotten, resets: this.resets };
  }

  /**
   * R(s→L−1) for the rows start..start+n−1, from their prefix sums `rows` [n, D] (what push
   * returned, in any blocks, any order), into out[start..]. Only once every row is in.
   */
  atEnd(rows: Float64Array, start: number, out: Float64Array): void {
    this.checkComplete();
    const D = this.channels, L = this.length;
    const n = rows.length / D;
    if (!Number.isInteger(n) || start < 0 || start + n > L) throw new RangeError(`rows ${start}..${start + n} are outside the ${L} rows`);
    for (let i = 0; i < n; i++) {
      const s = start + i;
      out[s] = s === L - 1 ? 1 : meanDecayOfRows(this.A, D, this.states, this.view, this.last, 0, rows, i);
    }
  }

  /**
   * Row t (Q_t, row r of q) arrives: its reset event, then the forgottenAt sweep as far as it
   * goes. Retention.forgottenAt's loop with t fixed at the newest row: R(s→t) ≥ τ waits for the
   * next row (t + 1); R(s→t) < τ forgets s at t and moves to s + 1 at the same t; s = t waits (R = 1).
   */
  private step(q: Float64Array, r: number, t: number): void {
    const A = this.A, D = this.channels, N = this.states;
    const kept = meanDecayOfRows(A, D, N, {}, q, r, t > 0 ? this.last : null, 0);
    if (kept < this.threshold) this.resets.push({ index: t, kept });
    this.append(q, r);
    while (this.s < t) {
      if (meanDecayOfRows(A, D, N, this.view, q, r, this.ring, this.head) >= this.threshold) break;
      this.forgotten[this.s++] = t;
      this.head = (this.head + 1) % this.capacity;
      this.count--;
    }
  }

  /** Q_t into the ring after Q_s..Q_{t−1}, growing it when full. */
  private append(q: Float64Array, r: number): void {
    const D = this.channels;
    const limit = this.options.maxWindowRows;
    if (limit !== undefined && this.count + 1 > limit) {
      throw this.options.onWindowLimit?.(this.count + 1, this.s) ?? new RangeError(`token ${this.s} is retained over more than ${limit} rows`);
    }
    if (this.count === this.capacity) {
      const capacity = Math.min(2 * this.capacity, limit ?? Infinity, this.length);
      const grown = new Float64Array(capacity * D);
      for (let i = 0; i < this.count; i++) grown.set(this.ring.subarray(((this.head + i) % this.capacity) * D, ((this.head + i) % this.capacity + 1) * D), i * D);
      this.ring = grown;
      this.capacity = capacity;
      this.head = 0;
    }
    const slot = (this.head + this.count) % this.capacity;
    this.ring.set(q.subarray(r * D, (r + 1) * D), slot * D);
    this.count++;
  }

  private checkComplete(): void {
    if (this.received !== this.length) throw new RangeError(`the streamed retention has ${this.received} of its ${this.length} rows`);
  }
}
