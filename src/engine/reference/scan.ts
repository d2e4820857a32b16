/**
 * The selective scan in float64, sequential over tokens — the definition itself:
 *   h_t = exp(Δ_t·A) ⊙ h_{t−1} + (Δ_t·u_t)·B_t,   y_t = C_t·h_t + D·u_t.
 * Mamba-1 has a [D, N] matrix A and one B/C per token; Mamba-2 has a scalar A per head and
 * B/C per group, shared by the heads of the group.
 */
import { stateSlots } from '../internals';
import type { ScanEdit, StatePatch } from '../interventions';
import type { FloatArray, Tensor } from '../tensor';
import type { F64 } from './ops';

type In = Tensor<FloatArray>;

export interface ScanResult<F extends FloatArray = Float64Array> {
  readonly y: Tensor<F>;
  /** States after the tokens in `at`, [T, ...stateShape], in the order of `at` (any order, repeats allowed). */
  readonly h: Tensor<F>;
}

/** The sequential scan's result, with the state after the last token: where a scan of the sequence's next chunk starts. */
export interface CarriedScan extends ScanResult {
  readonly last: Float64Array;
}

/**
 * Mamba-1: u, delta [L, D]; A [D, N] (already −exp(A_log)); B, C [L, N]; Dskip [D].
 * (The cpu and wasm backends' float32 loop is tfjs/hostLoopScan.ts.) `edit` and `patch`: the
 * layer's interventions (interventions.ts); the patched state replaces the state after its
 * token's update, as zero-state's zero does, so y at that token reads it.
 */
export function selectiveScan(u: In, delta: In, A: In, B: In, C: In, Dskip: In, at: Int32Array, h0?: Float64Array, edit?: ScanEdit, patch?: StatePatch): CarriedScan {
  const [L, D] = u.shape;
  const N = A.shape[1];
  const h = h0 ? Float64Array.from(h0) : new Float64Array(D * N);
  const y = new Float64Array(L * D);
  const states = new Float64Array(at.length * D * N);
  const slots = stateSlots(at, L);
  // The knocked-out token's own term in the state: its write, decayed since (interventions.ts).
  const ko = edit?.knockout;
  const g = ko ? new Float64Array(D * N) : undefined;
  for (let t = 0; t < L; t++) {
    const Bt = t * N;
    const writes = !edit?.noWrite?.has(t);
    const reset = edit?.reset?.has(t) ?? false;
    const patched = patch?.token === t ? patch.h : undefined;
    for (let d = 0; d < D; d++) {
      const dt = delta.data[t * D + d];
      const du = writes ? dt * u.data[t * D + d] : 0;
      let acc = 0;
      for (let n = 0; n < N; n++) {
        const i = d * N + n;
        const decay = Math.exp(dt * A.data[i]);
        h[i] = reset ? 0 : patched ? patched[i] : decay * h[i] + du * B.data[Bt + n];
        acc += h[i] * C.data[Bt + n];
        // A reset or a patch replaces the state, and with it what the knocked-out token left in it.
        if (g && t >= ko!.source) {
          g[i] = reset || patched ? 0 : t === ko!.source ? du * B.data[Bt + n] : decay * g[i];
          if (t >= ko!.from) acc -= g[i] * C.data[Bt + n];
        }
      }
      y[t * D + d] = acc + Dskip.data[d] * u.data[t * D + d];
    }
    for (const row of slots[t] ?? []) states.set(h, D * N * row);
  }
  return { y: { shape: [L, D], data: y }, h: { shape: [at.length, D, N], data: states }, last: h };
}

/**
 * Mamba-2: x [L, heads·P]; delta [L, heads]; A [heads]; B, C [L, G·N]; Dskip [heads].
 * Head k reads group floor(k / (heads / G)).
 */
export function selectiveScanHeads(x: In, delta: In, A: In, B: In, C: In, Dskip: In, groups: number, at: Int32Array, h0?: Float64Array, edit?: ScanEdit, patch?: StatePatch): CarriedScan {
  const L = x.shape[0];
  const heads = A.shape[0];
  const P = x.shape[1] / heads;
  const GN = B.shape[1];
  const N = GN / groups;
  const perGroup = heads / groups;
  const h = h0 ? Float64Array.from(h0) : new Float64Array(heads * P * N);
  const y = new Float64Array(L * heads * P);
  const states = new Float64Array(at.length * h.length);
  const slots = stateSlots(at, L);
  const ko = edit?.knockout;
  const own = ko ? new Float64Array(h.length) : undefined;
  for (let t = 0; t < L; t++) {
    const writes = !edit?.noWrite?.has(t);
    const reset = edit?.reset?.has(t) ?? false;
    const patched = patch?.token === t ? patch.h : undefined;
    for (let k = 0; k < heads; k++) {
      const dt = delta.data[t * heads + k];
      const decay = Math.exp(dt * A.data[k]);
      const g = Math.floor(k / perGroup);
      const bOff = t * GN + g * N;
      for (let p = 0; p < P; p++) {
        const c = k * P + p;
        const xv = x.data[t * heads * P + c];
        const dx = writes ? dt * xv : 0;
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const i = c * N + n;
          h[i] = reset ? 0 : patched ? patched[i] : decay * h[i] + dx * B.data[bOff + n];
          acc += h[i] * C.data[bOff + n];
          if (own && t >= ko!.source) {
            own[i] = reset || patched ? 0 : t === ko!.source ? dx * B.data[bOff + n] : decay * own[i];
            if (t >= ko!.from) acc -= own[i] * C.data[bOff + n];
          }
        }
        y[t * heads * P + c] = acc + Dskip.data[k] * xv;
      }
    }
    for (const row of slots[t] ?? []) states.set(h, h.length * row);
  }
  return { y: { shape: [L, heads * P], data: y }, h: { shape: [at.length, heads, P, N], data: states }, last: h };
}

/** A = −exp(A_log). */
export function negExp(aLog: Tensor<Float64Array | Float32Array>): F64 {
  return { shape: aLog.shape, data: Float64Array.from(aLog.data, (v) => -Math.exp(v)) };
}
