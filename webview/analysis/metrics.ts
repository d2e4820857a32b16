/**
 * The tokens × channels quantities the views show, computed from one layer's internals:
 *   gate   silu(z[t,d])                           output gate
 *   forget mean_n exp(Δ[t,d]·A[d,n])              share of the state kept at step t (small = reset)
 *   write  |Δ[t,d]·u[t,d]|·‖B[t]‖                  size of what step t writes into the state
 * and their per-token and per-layer summaries. All [L, D] row-major Float32Array.
 */
import { CancelledError } from '../../src/engine/errors';
import type { LayerInputs } from './layerInputs';

/*
 * Each matrix function writes into `out` when given one: the layer summaries pass one scratch
 * buffer for every layer instead of leaving 3 × 12 MB of garbage per layer at 130m × 2048.
 */

export function siluMatrix(z: Float32Array, out: Float32Array = new Float32Array(z.length)): Float32Array {
  for (let i = 0; i < z.length; i++) out[i] = z[i] / (1 + Math.exp(-z[i]));
  return out;
}

/** Rows [t0, t1) of the forget factor into `out` (split so long layers can yield between chunks). */
function forgetRows(x: LayerInputs, A: Float32Array, out: Float32Array, t0: number, t1: number): void {
  const { D, N, delta, deltaCols, deltaCol } = x;
  for (let t = t0; t < t1; t++) {
    for (let d = 0; d < D; d++) {
      const dt = delta[t * deltaCols + deltaCol[d]];
      let s = 0;
      for (let n = 0, a = d * N; n < N; n++, a++) s += Math.exp(dt * A[a]);
      out[t * D + d] = s / N;
    }
  }
}

/** Yields to the UI every ~`rowsPerChunk` tokens and stops when `cancelled()` says so. */
export async function forgetFactor(x: LayerInputs, options: ChunkOptions = {}, out: Float32Array = new Float32Array(x.L * x.D)): Promise<Float32Array> {
  const A = requireA(x);
  await chunked(x.L, options, (t0, t1) => forgetRows(x, A, out, t0, t1));
  return out;
}

export function writeMagnitude(x: LayerInputs, out: Float32Array = new Float32Array(x.L * x.D)): Float32Array {
  const { L, D, N, delta, deltaCols, deltaCol, u, B, bCols, bOffset } = x;
  const groups = bCols / N;
  const norms = new Float64Array(groups);
  for (let t = 0; t < L; t++) {
    for (let g = 0; g < groups; g++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += B[t * bCols + g * N + n] ** 2;
      norms[g] = Math.sqrt(s);
    }
    for (let d = 0; d < D; d++) {
      out[t * D + d] = Math.abs(delta[t * deltaCols + deltaCol[d]] * u[t * D + d]) * norms[bOffset[d] / N];
    }
  }
  return out;
}

/** Δ spread to every channel ([L, D]), so Mamba-2's per-head Δ lines up with per-channel views. */
export function deltaPerChannel(x: LayerInputs): Float32Array {
  if (x.deltaCols === x.D) return x.delta;
  const out = new Float32Array(x.L * x.D);
  for (let t = 0; t < x.L; t++) for (let d = 0; d < x.D; d++) out[t * x.D + d] = x.delta[t * x.deltaCols + x.deltaCol[d]];
  return out;
}

/** Mean over the columns of each row of a [rows, cols] matrix. */
export function rowMeans(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += m[r * cols + c];
    out[r] = s / cols;
  }
  return out;
}

export interface ColumnStats {
  readonly mean: Float64Array;
  readonly variance: Float64Array;
}

/** Mean and (population) variance of each column of a [rows, cols] matrix, ignoring non-finite values. */
export function columnStats(m: Float32Array, rows: number, cols: number): ColumnStats {
  const mean = new Float64Array(cols), m2 = new Float64Array(cols), count = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = m[r * cols + c];
      if (!Number.isFinite(v)) continue;
      // Welford: stable for long sequences of similar values.
      const n = ++count[c];
      const d = v - mean[c];
      mean[c] += d / n;
      m2[c] += d * (v - mean[c]);
    }
  }
  const variance = m2.map((s, c) => (count[c] > 0 ? s / count[c] : 0));
  return { mean, variance };
}

/** Column indices sorted by `key` descending (ties keep index order). */
export function orderByDescending(key: ArrayLike<number>): Int32Array {
  const idx = Int32Array.from({ length: key.length }, (_, i) => i);
  return idx.sort((a, b) => (key[b] - key[a]) || a - b);
}


export function meanOf(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return a.length ? s / a.length : NaN;
}

export function fractionBelow(a: Float32Array, threshold: number): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] < threshold) n++;
  return a.length ? n / a.length : NaN;
}

export interface ChunkOptions {
  readonly rowsPerChunk?: number;
  /** True when the work is no longer wanted: the loop stops with CancelledError. */
  readonly cancelled?: () => boolean;
}

/** Runs `work(t0, t1)` over [0, rows) in chunks, giving the UI a turn between chunks. */
export async function chunked(rows: number, options: ChunkOptions, work: (t0: number, t1: number) => void): Promise<void> {
  const step = Math.max(1, options.rowsPerChunk ?? 64);
  for (let t0 = 0; t0 < rows; t0 += step) {
    if (options.cancelled?.()) throw new CancelledError('analysis');
    work(t0, Math.min(rows, t0 + step));
    if (t0 + step < rows) await yieldToEvents();
  }
}

/**
 * A turn for the events waiting (input, paint, messages), then back. A message to oneself, not
 * setTimeout(0): browsers clamp nested timeouts to 4 ms, and a long run's summaries yield some
 * 12,000 times at 131k tokens (mamba1-tiny). One channel for every yield: a port made per call
 * can be collected before its message arrives, and the yield never returns.
 */
let turns: { readonly port: MessagePort; readonly waiting: (() => void)[] } | null = null;

function yieldToEvents(): Promise<void> {
  if (typeof MessageChannel === 'undefined') return new Promise((r) => setTimeout(r, 0));
  if (!turns) {
    const channel = new MessageChannel();
    const waiting: (() => void)[] = [];
    channel.port1.onmessage = () => waiting.shift()?.();
    // Node: the listening port must not keep the process alive.
    (channel.port1 as { unref?: () => void }).unref?.();
    turns = { port: channel.port2, waiting };
  }
  const t = turns;
  return new Promise((resolve) => {
    t.waiting.push(resolve);
    t.port.postMessage(null);
  });
}

function requireA(x: LayerInputs): Float32Array {
  if (!x.A) throw new Error('the forget factor needs the model\'s A (A = −exp(A_log)): load the model');
  return x.A;
}
