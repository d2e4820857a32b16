/**
 * Float64 building blocks of the reference forward. Plain loops, written for clarity and to be
 * numerically exact in double precision; they mirror transformers' module semantics one to one.
 */
import type { Tensor } from '../tensor';

export type F64 = Tensor<Float64Array>;

/** y[l, o] = Σ_i x[l, i] · W[o, i] (+ b[o]) — torch.nn.Linear. */
export function linear(x: F64, w: F64, b?: F64): F64 {
  const [L, inDim] = x.shape;
  const [outDim, wIn] = w.shape;
  if (wIn !== inDim) throw new Error(`linear: input has ${inDim} features, weight expects ${wIn}`);
  const y = new Float64Array(L * outDim);
  const xd = x.data, wd = w.data;
  for (let l = 0; l < L; l++) {
    const xo = l * inDim;
    for (let o = 0; o < outDim; o++) {
      const wo = o * inDim;
      let s = b ? b.data[o] : 0;
      for (let i = 0; i < inDim; i++) s += xd[xo + i] * wd[wo + i];
      y[l * outDim + o] = s;
    }
  }
  return { shape: [L, outDim], data: y };
}

/** RMSNorm over groups of `groupSize` columns; without `weight`, the weightless norm (FalconMamba's dt, B, C). */
export function rmsNorm(x: F64, weight: F64 | undefined, eps: number, groupSize = x.shape[1]): F64 {
  const [L, H] = x.shape;
  const y = new Float64Array(L * H);
  for (let l = 0; l < L; l++) {
    for (let g = 0; g < H; g += groupSize) {
      let ss = 0;
      for (let i = g; i < g + groupSize; i++) ss += x.data[l * H + i] ** 2;
      const r = 1 / Math.sqrt(ss / groupSize + eps);
      for (let i = g; i < g + groupSize; i++) y[l * H + i] = x.data[l * H + i] * r * (weight ? weight.data[i] : 1);
    }
  }
  return { shape: [L, H], data: y };
}

/** torch.nn.functional.softplus (beta 1, threshold 20). */
export function softplus(v: number): number {
  return v > 20 ? v : Math.log1p(Math.exp(v));
}

export function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

/**
 * The error function, to about 1e-15: erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3···(2n+1)),
 * a series of positive terms (no cancellation); past |x| = 6, erf is ±1 in float64. JavaScript
 * has no Math.erf; GELU (Zamba2's MLP) needs it.
 */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a >= 6) return Math.sign(x);
  let term = a, sum = a;
  for (let n = 1; term > 1e-17 * sum; n++) {
    term *= (2 * a * a) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
}

/** GELU as torch's default (approximate="none"): x · Φ(x) with the exact erf. */
export function gelu(v: number): number {
  return 0.5 * v * (1 + erf(v / Math.SQRT2));
}

export function map(x: F64, f: (v: number) => number): F64 {
  return { shape: x.shape, data: x.data.map(f) };
}

/** x · s (x itself when s is 1): the hybrid families' µP multipliers. */
export function scaled(x: F64, s: number): F64 {
  return s === 1 ? x : map(x, (v) => v * s);
}

/** Columns [start, start + width) of a [L, C] tensor. */
export function columns(x: F64, start: number, width: number): F64 {
  const [L, C] = x.shape;
  const y = new Float64Array(L * width);
  for (let l = 0; l < L; l++) y.set(x.data.subarray(l * C + start, l * C + start + width), l * width);
  return { shape: [L, width], data: y };
}

/**
 * patch-state's conv context (interventions.ts StatePatch is one): positions after `token` read `conv`
 * ([K − 1, C], the inputs of positions token − K + 2 … token, oldest first) in place of those
 * positions' own inputs, as a run continuing from another run's state after `token` would.
 */
export interface ConvPatch {
  readonly token: number;
  readonly conv: Float64Array;
}

/**
 * Input channel c of position `src` as the conv at position `reader` sees it: x, the context
 * `before` x (zeros at a sequence's start), or a patch's rows once the reader is past its token.
 */
function convInput(x: F64, K: number, src: number, c: number, reader: number, before?: F64, patch?: ConvPatch): number {
  const C = x.shape[1];
  if (patch && reader > patch.token && src <= patch.token && src > patch.token - K + 1) return patch.conv[(src - patch.token + K - 2) * C + c];
  if (src >= 0) return x.data[src * C + c];
  return before ? before.data[(K - 1 + src) * C + c] : 0;
}

/**
 * Causal depthwise conv1d + SiLU over x [L, C], weights [C, K]: out[t,c] = silu(b[c] +
 * Σ_k w[c,k]·x[t−K+1+k, c]) (the cpu and wasm backends' float32 conv is tfjs/hostLoopScan.ts). `before` [K − 1, C]: the inputs
 * that precede x (the previous chunk's last K − 1 rows; zeros at the start of a sequence), so a
 * sequence cut into chunks convolves exactly as one pass does. `patch`: patch-state's context.
 */
export function causalConvSilu(x: F64, w: F64, b?: F64, before?: F64, patch?: ConvPatch): F64 {
  const [L, C] = x.shape;
  const K = w.shape[1];
  const y = new Float64Array(L * C);
  for (let t = 0; t < L; t++) {
    for (let c = 0; c < C; c++) {
      let s = b ? b.data[c] : 0;
      for (let k = 0; k < K; k++) s += w.data[c * K + k] * convInput(x, K, t - K + 1 + k, c, t, before, patch);
      y[t * C + c] = silu(s);
    }
  }
  return { shape: [L, C], data: y };
}

/**
 * The conv's context after position t: the K − 1 inputs ending at t, as position t + 1 reads
 * them ([K − 1, C], oldest first). After the last position it is what the next chunk starts from.
 */
export function convWindow(x: F64, K: number, t: number, before?: F64, patch?: ConvPatch): F64 {
  const C = x.shape[1];
  const rows = new Float64Array((K - 1) * C);
  for (let r = 0; r < K - 1; r++) for (let c = 0; c < C; c++) rows[r * C + c] = convInput(x, K, t - K + 2 + r, c, t + 1, before, patch);
  return { shape: [K - 1, C], data: rows };
}

/** The conv's context after each position in `at`: [T, K − 1, C] (patch-state's source, with the states h at the same positions). */
export function convWindows(x: F64, K: number, at: Int32Array, before?: F64, patch?: ConvPatch): F64 {
  const C = x.shape[1];
  const out = new Float64Array(at.length * (K - 1) * C);
  at.forEach((t, i) => out.set(convWindow(x, K, t, before, patch).data, i * (K - 1) * C));
  return { shape: [at.length, K - 1, C], data: out };
}

export function embed(ids: ArrayLike<number>, table: F64): F64 {
  const H = table.shape[1];
  const V = table.shape[0];
  const y = new Float64Array(ids.length * H);
  for (let l = 0; l < ids.length; l++) {
    const id = ids[l];
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`token id ${id} at position ${l} is outside the ${V}-token vocabulary`);
    y.set(table.data.subarray(id * H, id * H + H), l * H);
  }
  return { shape: [ids.length, H], data: y };
}

/** [a | b] along the columns of two [L, ·] tensors. */
export function concatColumns(a: F64, b: F64): F64 {
  const [L, A] = a.shape;
  const B = b.shape[1];
  const y = new Float64Array(L * (A + B));
  for (let l = 0; l < L; l++) {
    y.set(a.data.subarray(l * A, (l + 1) * A), l * (A + B));
    y.set(b.data.subarray(l * B, (l + 1) * B), l * (A + B) + A);
  }
  return { shape: [L, A + B], data: y };
}

export function add(a: F64, b: F64): F64 {
  const y = new Float64Array(a.data.length);
  for (let i = 0; i < y.length; i++) y[i] = a.data[i] + b.data[i];
  return { shape: a.shape, data: y };
}

/** out = y ⊙ silu(z). */
export function gate(y: F64, z: F64): F64 {
  const out = new Float64Array(y.data.length);
  for (let i = 0; i < out.length; i++) out[i] = y.data[i] * silu(z.data[i]);
  return { shape: y.shape, data: out };
}
