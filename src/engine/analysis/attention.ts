/**
 * The implicit ("hidden") attention of a selective-scan layer (Ali, Zimerman & Wolf, 2024):
 *
 *   α_d[t,s] = Σ_n C_t[n] · exp(A[d,n] · Σ_{s<k≤t} Δ_k[d]) · Δ_s[d] · B_s[n]   (0 for s > t)
 *
 * i.e. y_t[d] = Σ_s α_d[t,s]·u_s[d] + D·u_t[d]: the scan written as a causal L×L mixing matrix.
 * For each t we walk s backwards multiplying the decay in one factor exp(A·Δ_s) at a time, so the
 * cost is O(L²·D·N) with O(L² + L·N) memory: no L×L×D tensor is ever built.
 *
 * Mamba-2 passes A as [heads] (one scalar per head), delta as [L, heads] and B, C as [L, G·N];
 * head h reads group ⌊h / (heads/G)⌋. Every channel of a head has the same α, so the channel mean
 * is the head mean and "channel" below means head.
 */
import { CancelledError, InputError } from '../errors';
import type { Tensor } from '../tensor';

/** The channel mean of α_d: the [L, L] stored as layers.i.hidden_attention in mamba-dump/1. */
export function hiddenAttention(delta: Tensor, B: Tensor, C: Tensor, A: Tensor, groups = 1): Tensor<Float64Array> {
  const steps = meanByChannel(delta, B, C, A, groups);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

export interface AttentionProgress {
  /** Called between channels; returning true stops the computation with a CancelledError. */
  readonly shouldStop?: () => boolean;
  /** Channels computed between two yields to the event loop (the UI stays responsive). */
  readonly channelsPerYield?: number;
  /** Told at each yield how many channels are done, of how many. */
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * hiddenAttention for an interactive host: yields to the event loop every few channels and can be
 * cancelled in between (the panel's attention view when the selection moves on).
 */
export async function hiddenAttentionAsync(delta: Tensor, B: Tensor, C: Tensor, A: Tensor, groups = 1, progress: AttentionProgress = {}): Promise<Tensor<Float64Array>> {
  const steps = meanByChannel(delta, B, C, A, groups);
  const every = progress.channelsPerYield ?? 8;
  const total = delta.shape[1]; // channels (heads for Mamba-2), one step each
  for (let d = 1; ; d++) {
    const r = steps.next();
    if (r.done) return r.value;
    if (d % every === 0) {
      progress.onProgress?.(d, total);
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (progress.shouldStop?.()) throw new CancelledError('hidden attention');
    }
  }
}

/** The channel mean, one channel per step. */
function* meanByChannel(delta: Tensor, B: Tensor, C: Tensor, A: Tensor, groups: number): Generator<number, Tensor<Float64Array>> {
  const p = scanParams(delta, B, C, A, groups);
  const out = new Float64Array(p.L * p.L);
  for (let d = 0; d < p.D; d++) {
    accumulateChannel(p, d, 1 / p.D, out);
    yield d;
  }
  return { shape: [p.L, p.L], data: out };
}

/** α_d for one channel d (one head for Mamba-2), [L, L]. */
export function hiddenAttentionChannel(delta: Tensor, B: Tensor, C: Tensor, A: Tensor, channel: number, groups = 1): Tensor<Float64Array> {
  const p = scanParams(delta, B, C, A, groups);
  if (!Number.isInteger(channel) || channel < 0 || channel >= p.D) throw new RangeError(`channel ${channel} is outside 0..${p.D - 1}`);
  const out = new Float64Array(p.L * p.L);
  accumulateChannel(p, channel, 1, out);
  return { shape: [p.L, p.L], data: out };
}

/**
 * Attention rollout across layers (Abnar & Zuidema, 2020), adapted to signed hidden attention:
 *   Â_ℓ = |α_ℓ| with each row divided by its sum (a zero row becomes the identity row),
 *   Ã_ℓ = ½·Â_ℓ + ½·I   (the residual connection carries the token itself),
 *   rollout_ℓ = Ã_ℓ · rollout_{ℓ−1},   rollout_{−1} = I.
 * |α| because C_t·B_s can be negative and the rollout treats rows as shares of influence.
 * Returns rollout_ℓ for every ℓ: row t says how much each token s contributes at position t
 * after layers 0..ℓ. Lower-triangular products only: O(L³/6) per layer.
 */
export function attentionRollout(layers: readonly Tensor[]): Tensor<Float64Array>[] {
  const out: Tensor<Float64Array>[] = [];
  let prev: Float64Array | undefined;
  for (const [i, a] of layers.entries()) {
    const L = a.shape[0];
    if (a.shape.length !== 2 || a.shape[1] !== L || (i > 0 && L !== layers[0].shape[0])) {
      throw new InputError(`hidden_attention of layer ${i}`, `must be [L, L] like the other layers; got [${a.shape.join(', ')}]`);
    }
    const mixed = residualMix(a, L);
    let rolled: Float64Array;
    if (!prev) {
      rolled = mixed;
    } else {
      rolled = new Float64Array(L * L);
      for (let t = 0; t < L; t++) {
        for (let s = 0; s <= t; s++) {
          let acc = 0;
          for (let k = s; k <= t; k++) acc += mixed[t * L + k] * prev[k * L + s];
          rolled[t * L + s] = acc;
        }
      }
    }
    out.push({ shape: [L, L], data: rolled });
    prev = rolled;
  }
  return out;
}

/** ½·rownorm(|α|) + ½·I, causal part only. */
function residualMix(a: Tensor, L: number): Float64Array {
  const m = new Float64Array(L * L);
  for (let t = 0; t < L; t++) {
    let sum = 0;
    for (let s = 0; s <= t; s++) sum += Math.abs(Number(a.data[t * L + s]));
    if (sum > 0 && Number.isFinite(sum)) {
      for (let s = 0; s <= t; s++) m[t * L + s] = (0.5 * Math.abs(Number(a.data[t * L + s]))) / sum;
      m[t * L + t] += 0.5;
    } else {
      m[t * L + t] = 1;
    }
  }
  return m;
}

interface ScanParams {
  readonly L: number;
  /** Channels (Mamba-1) or heads (Mamba-2). */
  readonly D: number;
  readonly N: number;
  /** States per channel in A: N for [D, N], 1 for a per-head scalar. */
  readonly aStates: number;
  readonly groupWidth: number; // G·N, the row length of B and C
  readonly perGroup: number; // channels per group
  readonly delta: Float64Array;
  readonly B: Float64Array;
  readonly C: Float64Array;
  readonly A: Float64Array;
}

function scanParams(delta: Tensor, B: Tensor, C: Tensor, A: Tensor, groups: number): ScanParams {
  const src = 'hidden attention';
  if (delta.shape.length !== 2) throw new InputError(src, `delta must be [L, D]; got [${delta.shape.join(', ')}]`);
  const [L, D] = delta.shape;
  if (!Number.isInteger(groups) || groups < 1 || D % groups !== 0) throw new InputError(src, `${groups} groups do not divide ${D} channels`);
  for (const [name, t] of [['B', B], ['C', C]] as const) {
    if (t.shape.length !== 2 || t.shape[0] !== L || t.shape[1] % groups !== 0) {
      throw new InputError(src, `${name} must be [${L}, groups·N]; got [${t.shape.join(', ')}]`);
    }
  }
  if (B.shape[1] !== C.shape[1]) throw new InputError(src, `B [${B.shape.join(', ')}] and C [${C.shape.join(', ')}] differ`);
  const N = B.shape[1] / groups;
  const aStates = A.shape.length === 1 ? 1 : A.shape[1];
  if (A.shape[0] !== D || A.shape.length > 2 || (aStates !== 1 && aStates !== N)) {
    throw new InputError(src, `A must be [${D}, ${N}] or [${D}]; got [${A.shape.join(', ')}]`);
  }
  return {
    L, D, N, aStates, groupWidth: B.shape[1], perGroup: D / groups,
    delta: f64(delta), B: f64(B), C: f64(C), A: f64(A),
  };
}

function f64(t: Tensor): Float64Array {
  return t.data instanceof Float64Array ? t.data : Float64Array.from(t.data as ArrayLike<number>, Number);
}

/** out[t,s] += scale·α_d[t,s] for s ≤ t. */
function accumulateChannel(p: ScanParams, d: number, scale: number, out: Float64Array): void {
  const { L, D, N, aStates, groupWidth } = p;
  const bOff = Math.floor(d / p.perGroup) * N;
  // step[s·N + n] = exp(A[d,n]·Δ_s[d]): the decay token s applies to everything written before it.
  const step = new Float64Array(L * N);
  for (let s = 0; s < L; s++) {
    const dt = p.delta[s * D + d];
    for (let n = 0; n < N; n++) step[s * N + n] = Math.exp(p.A[d * aStates + (aStates === 1 ? 0 : n)] * dt);
  }
  const w = new Float64Array(N);
  const Bm = p.B, Cm = p.C, dl = p.delta;
  for (let t = 0; t < L; t++) {
    const ct = t * groupWidth + bOff;
    const row = t * L;
    w.fill(1);
    for (let s = t; s >= 0; s--) {
      const bs = s * groupWidth + bOff;
      const ss = s * N;
      let acc = 0;
      let alive = false;
      for (let n = 0; n < N; n++) {
        const wn = w[n];
        acc += Cm[ct + n] * wn * Bm[bs + n];
        const next = wn * step[ss + n];
        w[n] = next;
        if (next !== 0) alive = true;
      }
      out[row + s] += scale * acc * dl[s * D + d];
      // Every decay has underflowed to 0: all earlier tokens contribute exactly 0.
      if (!alive) break;
    }
  }
}
