/**
 * The selective scan computed the ways real kernels compute it, so a divergence can be traced to
 * the algorithm, the precision or the discretization:
 *
 *   mode  sequential  h_t = Ā_t·h_{t−1} + B̄_t·u_t, token by token (the definition, scan.ts);
 *         chunked     mamba_ssm's SSD chunking (ssd_combined.py): inside a chunk of Q tokens every
 *                     h_t is the quadratic form exp(cum_t)·H + Σ_{s≤t} exp(cum_t − cum_s)·B̄u_s over
 *                     the chunk's cumulative sum cum of Δ·A, and the chunk's last state H is
 *                     carried to the next chunk;
 *         parallel    a Blelloch (work-efficient, up-sweep/down-sweep) scan over the pairs
 *                     (Ā_t, B̄u_t) with (a₁,b₁)∘(a₂,b₂) = (a₁a₂, a₂b₁ + b₂), the associative scan
 *                     of the CUDA kernel and of transformers' use_associative_scan.
 *   zoh   euler       B̄ = Δ·B, what mamba_ssm and transformers use;
 *         exact       B̄ = (ΔA)⁻¹(exp(ΔA) − 1)·Δ·B, the true zero-order hold. A is diagonal, so
 *                     per state this is φ(ΔA)·Δ·B with φ(x) = expm1(x)/x, which expm1 keeps
 *                     accurate for small |ΔA| (and φ(0) = 1).
 *   precision         emulates mamba_ssm's selective_scan kernel in that dtype:
 *                     - the inputs u, Δ, B, C and the parameters A_log, D are rounded to the dtype
 *                       (they are stored in it);
 *                     - A = −exp(A_log) and every arithmetic result inside the scan (Δ·A, exp,
 *                       Δ·u, B̄u, the state update, the C contraction, D·u) is rounded to fp32:
 *                       the kernel loads everything as float and carries the state in fp32;
 *                       a·h + b and y + h·C are rounded once (nvcc contracts them to FMAs);
 *                     - y is accumulated in fp32 starting from D·u, state by state, and rounded
 *                       to the dtype when stored. States h are returned as carried (fp32).
 *                     fp64 rounds nothing.
 * fp64 + sequential + euler is the reference scan itself: it runs scan.ts's code.
 */
import { silu, type F64 } from './ops';
import { rounder, roundArray, type Precision, type Rounder } from './precision';
import { negExp, selectiveScan, selectiveScanHeads, type ScanResult } from './scan';

export type ScanMode = 'sequential' | 'chunked' | 'parallel';
export const SCAN_MODES: readonly ScanMode[] = ['sequential', 'chunked', 'parallel'];
export type Discretization = 'euler' | 'exact';
export const DISCRETIZATIONS: readonly Discretization[] = ['euler', 'exact'];

/** One layer's scan inputs as a dump records them, with the model's parameters. */
export interface ScanInputs {
  /** [L, D]: Mamba-1 channels, or Mamba-2 heads × head dim. */
  readonly u: F64;
  /** [L, D] (Mamba-1) or [L, heads] (Mamba-2). */
  readonly delta: F64;
  /** [L, groups·N]. */
  readonly B: F64;
  readonly C: F64;
  /** [D, N] (Mamba-1) or [heads] (Mamba-2). */
  readonly aLog: F64;
  /** [D] or [heads]. */
  readonly D: F64;
  /** B/C groups (Mamba-2); 1 for Mamba-1. */
  readonly groups: number;
}

export interface ScanVariant {
  readonly precision: Precision;
  readonly mode: ScanMode;
  readonly zoh: Discretization;
  /** Tokens per chunk in chunked mode. */
  readonly chunkSize: number;
}

function isMamba2Scan(inputs: ScanInputs): boolean {
  return inputs.aLog.shape.length === 1;
}

/** y [L, D] and the states after the tokens in `at`, [T, D, N] (Mamba-2: [T, heads, P, N], the same memory order). */
export function scanVariant(inputs: ScanInputs, variant: ScanVariant, at: Int32Array): ScanResult {
  if (variant.precision === 'fp64' && variant.mode === 'sequential' && variant.zoh === 'euler') {
    const A = negExp(inputs.aLog);
    return isMamba2Scan(inputs)
      ? selectiveScanHeads(inputs.u, inputs.delta, A, inputs.B, inputs.C, inputs.D, inputs.groups, at)
      : selectiveScan(inputs.u, inputs.delta, A, inputs.B, inputs.C, inputs.D, at);
  }
  return channelScan(inputs, variant, at);
}

/**
 * Where channel c finds its Δ column, its row of A and its B/C slice. Mamba-2 is Mamba-1 with
 * A and Δ shared by the P channels of a head and B/C shared by the heads of a group.
 */
interface ChannelLayout {
  readonly L: number;
  readonly channels: number;
  readonly N: number;
  deltaColumn(c: number): number;
  /** A[c, n] = aRow[c·N + n]. */
  readonly A: Float64Array;
  readonly dSkip: Float64Array;
  bOffset(c: number): number;
}

function layout(inputs: ScanInputs, w: Rounder, r: Rounder): ChannelLayout {
  const [L, channels] = inputs.u.shape;
  const aLog = inputs.aLog.data.map(r);
  const dParam = inputs.D.data.map(r);
  if (!isMamba2Scan(inputs)) {
    const N = inputs.aLog.shape[1];
    return { L, channels, N, deltaColumn: (c) => c, A: aLog.map((v) => w(-Math.exp(v))), dSkip: dParam, bOffset: () => 0 };
  }
  const heads = inputs.aLog.shape[0];
  const P = channels / heads;
  const N = inputs.B.shape[1] / inputs.groups;
  const headsPerGroup = heads / inputs.groups;
  const head = (c: number) => Math.floor(c / P);
  const A = new Float64Array(channels * N);
  const dSkip = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    A.fill(w(-Math.exp(aLog[head(c)])), c * N, (c + 1) * N);
    dSkip[c] = dParam[head(c)];
  }
  return { L, channels, N, deltaColumn: head, A, dSkip, bOffset: (c) => Math.floor(head(c) / headsPerGroup) * N };
}

/** The kernel's arithmetic precision: fp32 for every dtype but fp64. */
function workingRounder(p: Precision): Rounder {
  return p === 'fp64' ? rounder('fp64') : Math.fround;
}

/** φ(x) = (exp(x) − 1)/x, the exact-ZOH factor of Δ·B. */
export function zohFactor(x: number): number {
  return x === 0 ? 1 : Math.expm1(x) / x;
}

function channelScan(inputs: ScanInputs, variant: ScanVariant, at: Int32Array): ScanResult {
  const store = rounder(variant.precision);
  const w = workingRounder(variant.precision);
  const { L, channels, N, deltaColumn, A, dSkip, bOffset } = layout(inputs, w, store);
  const u = roundArray(inputs.u.data, variant.precision);
  const delta = roundArray(inputs.delta.data, variant.precision);
  const B = roundArray(inputs.B.data, variant.precision);
  const C = roundArray(inputs.C.data, variant.precision);
  const deltaWidth = inputs.delta.shape[1];
  const bWidth = inputs.B.shape[1];
  const y = new Float64Array(L * channels);
  const states = new Float64Array(at.length * channels * N);
  const logDecay = new Float64Array(L);
  const decay = new Float64Array(L);
  const input = new Float64Array(L);
  const h = new Float64Array(L);
  for (let c = 0; c < channels; c++) {
    const dc = deltaColumn(c);
    const bo = bOffset(c);
    for (let t = 0; t < L; t++) y[t * channels + c] = w(dSkip[c] * u[t * channels + c]);
    for (let n = 0; n < N; n++) {
      const a = A[c * N + n];
      for (let t = 0; t < L; t++) {
        const dt = delta[t * deltaWidth + dc];
        const x = w(dt * a);
        logDecay[t] = x;
        decay[t] = w(Math.exp(x));
        const bu = w(w(dt * u[t * channels + c]) * B[t * bWidth + bo + n]);
        input[t] = variant.zoh === 'euler' ? bu : w(w(zohFactor(x)) * bu);
      }
      switch (variant.mode) {
        case 'sequential': sequentialScan(decay, input, w, h); break;
        case 'parallel': blellochScan(decay, input, w, h); break;
        case 'chunked': chunkedScan(logDecay, input, variant.chunkSize, w, h); break;
      }
      for (let t = 0; t < L; t++) {
        const i = t * channels + c;
        y[i] = w(y[i] + h[t] * C[t * bWidth + bo + n]);
      }
      for (let k = 0; k < at.length; k++) states[(k * channels + c) * N + n] = h[at[k]];
    }
  }
  return { y: { shape: [L, channels], data: y.map(store) }, h: { shape: [at.length, channels, N], data: states } };
}

/** h_t = a_t·h_{t−1} + b_t with h_{−1} = 0, into `h`. */
function sequentialScan(a: Float64Array, b: Float64Array, w: Rounder, h: Float64Array): void {
  let s = 0;
  for (let t = 0; t < a.length; t++) h[t] = s = w(a[t] * s + b[t]);
}

/**
 * The same recurrence by Blelloch's exclusive scan over (a, b) pairs, padded to a power of two
 * with the identity (1, 0); every combination is rounded as the kernel would round it.
 */
function blellochScan(a: Float64Array, b: Float64Array, w: Rounder, h: Float64Array): void {
  const L = a.length;
  let size = 1;
  while (size < L) size *= 2;
  const pa = new Float64Array(size).fill(1);
  const pb = new Float64Array(size);
  pa.set(a);
  pb.set(b);
  // Up-sweep: node i becomes (left subtree) ∘ (right subtree).
  for (let d = 1; d < size; d *= 2) {
    for (let i = 2 * d - 1; i < size; i += 2 * d) {
      const l = i - d;
      pb[i] = w(pa[i] * pb[l] + pb[i]);
      pa[i] = w(pa[l] * pa[i]);
    }
  }
  pa[size - 1] = 1;
  pb[size - 1] = 0;
  // Down-sweep: the left child takes its parent's prefix, the right child prefix ∘ left sum.
  for (let d = size / 2; d >= 1; d /= 2) {
    for (let i = 2 * d - 1; i < size; i += 2 * d) {
      const l = i - d;
      const leftA = pa[l], leftB = pb[l];
      pa[l] = pa[i];
      pb[l] = pb[i];
      pb[i] = w(leftA * pb[i] + leftB);
      pa[i] = w(pa[i] * leftA);
    }
  }
  // pb[t] is now h_{t−1}; one more step gives the inclusive h_t.
  for (let t = 0; t < L; t++) h[t] = w(a[t] * pb[t] + b[t]);
}

/** SSD chunking: quadratic form inside each chunk over the cumulative Δ·A, last state carried across. */
function chunkedScan(logDecay: Float64Array, b: Float64Array, chunkSize: number, w: Rounder, h: Float64Array): void {
  const L = logDecay.length;
  const cum = new Float64Array(chunkSize);
  let carried = 0;
  for (let start = 0; start < L; start += chunkSize) {
    const end = Math.min(start + chunkSize, L);
    let sum = 0;
    for (let t = start; t < end; t++) cum[t - start] = sum = w(sum + logDecay[t]);
    for (let t = start; t < end; t++) {
      const ct = cum[t - start];
      let acc = w(w(Math.exp(ct)) * carried);
      for (let s = start; s <= t; s++) acc = w(acc + w(Math.exp(w(ct - cum[s - start]))) * b[s]);
      h[t] = acc;
    }
    carried = h[end - 1];
  }
}

/**
 * y ⊙ silu(z), the output mamba_ssm's kernel returns when it is given z: z is stored in the
 * dtype, the gate is computed in fp32 and the product stored in the dtype.
 */
export function gatedOutput(y: F64, z: F64, precision: Precision): F64 {
  const store = rounder(precision);
  const w = workingRounder(precision);
  return { shape: y.shape, data: y.data.map((v, i) => store(w(v * w(silu(store(z.data[i])))))) };
}
