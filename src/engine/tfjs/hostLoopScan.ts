/**
 * Scan kernels for the backends whose tensors live in CPU memory (cpu, wasm): read the inputs,
 * run the sequential loop in float32, upload the outputs. On these backends the loop does L·D·N
 * work where the tfjs-ops prefix scan does log2(chunk) times more through generic broadcasting
 * ops, so the loop is the fast path there. The conv + SiLU runs the same way: its five tfjs ops
 * would put four [L, C] temporaries in the wasm heap, which never shrinks.
 *
 * fp32 means float32 arithmetic, as in the tfjs ops around these kernels: every result is rounded
 * with Math.fround (JS arithmetic is float64; storing only the state in float32 would make these
 * kernels float64 ones with float32 storage). The loops are the float64 reference's (reference/scan.ts,
 * reference/ops.ts: the oracle they are tested against) written once more rather than shared through a rounding parameter: a call
 * site that sees both Math.fround and the identity is polymorphic, and V8 then runs either loop
 * five to seven times slower.
 */
import * as tf from '@tensorflow/tfjs-core';
import { stateSlots } from '../internals';
import type { ScanEdit, StatePatch } from '../interventions';
import type { Tensor } from '../tensor';
import type { ScanKernels } from './scan';

type F32 = Tensor<Float32Array>;
/** patch-state's state (its conv context is the conv's). */
type PatchedState = Pick<StatePatch, 'token' | 'h'>;

/** The state before token 0: zeros, or a patch at token −1 (a chunk's carry from the chunk before). */
function initialState(size: number, patch?: PatchedState): Float32Array {
  return patch?.token === -1 ? Float32Array.from(patch.h) : new Float32Array(size);
}

const f = Math.fround;

function read(t: tf.Tensor): F32 {
  return { shape: t.shape, data: t.dataSync() as Float32Array };
}

function upload<R extends tf.Rank>(t: F32): tf.Tensor<R> {
  return tf.tensor(t.data, [...t.shape] as tf.ShapeMap[R], 'float32') as tf.Tensor<R>;
}

/**
 * An edited token's row of the state (N values from `base`) replaced after the plain update: by
 * zeros (zero-state) or by the patch's values (patch-state). Returns the row's C·h anew.
 */
function replaceRow(h: Float32Array, base: number, N: number, patched: Float64Array | undefined, C: Float32Array, cOff: number): number {
  let acc = 0;
  for (let n = 0; n < N; n++) {
    h[base + n] = patched ? f(patched[base + n]) : 0;
    acc = f(acc + f(h[base + n] * C[cOff + n]));
  }
  return acc;
}

/** The knocked-out token's term: its own state g, the knockout, and A (a row decays by A[aOff + n·aStride]). */
interface KnockoutRow {
  readonly g: Float32Array;
  readonly ko: NonNullable<ScanEdit['knockout']>;
  readonly A: Float32Array;
}

/**
 * knockout at token t ≥ source on one row: g, the source's write decayed since (cleared with the
 * state by a reset or a patch), updated; from `from` on, its C·g taken from `acc`, which is returned.
 */
function knockoutRow(k: KnockoutRow, t: number, base: number, N: number, cleared: boolean, dt: number, write: number, B: Float32Array, C: Float32Array, bOff: number, aOff: number, aStride: number, acc: number): number {
  const { g, ko, A } = k;
  for (let n = 0; n < N; n++) {
    const i = base + n;
    g[i] = cleared ? 0 : t === ko.source ? f(write * B[bOff + n]) : f(f(Math.exp(f(dt * A[aOff + n * aStride]))) * g[i]);
    if (t >= ko.from) acc = f(acc - f(g[i] * C[bOff + n]));
  }
  return acc;
}

/**
 * Mamba-1: h_t = exp(Δ_t·A) ⊙ h_{t−1} + (Δ_t·u_t)·B_t, y_t = C_t·h_t + D·u_t; states at `at`, in its order.
 * `edit` and `patch`: the interventions in the scan, applied as the reference's selectiveScan applies
 * them. The loop over N is the plain one whatever the edits: a replaced state and the knocked-out
 * term are applied after it, on the rows they reach, so a run without edits pays nothing for them.
 */
export function selectiveScanF32(u: F32, delta: F32, A: F32, B: F32, C: F32, Dskip: F32, at: Int32Array, edit?: ScanEdit, patch?: PatchedState): { y: F32; h: F32 } {
  const [L, D] = u.shape;
  const N = A.shape[1];
  const h = initialState(D * N, patch);
  const y = new Float32Array(L * D);
  const states = new Float32Array(at.length * D * N);
  const slots = stateSlots(at, L);
  // The knocked-out token's own term in the state: its write, decayed since.
  const knock: KnockoutRow | undefined = edit?.knockout && { g: new Float32Array(D * N), ko: edit.knockout, A: A.data };
  for (let t = 0; t < L; t++) {
    const Bt = t * N;
    const writes = !edit?.noWrite?.has(t);
    const reset = edit?.reset?.has(t) ?? false;
    const patched = !reset && patch?.token === t ? patch.h : undefined;
    const knocking = knock !== undefined && t >= knock.ko.source;
    for (let d = 0; d < D; d++) {
      const dt = delta.data[t * D + d];
      const du = writes ? f(dt * u.data[t * D + d]) : 0;
      let acc = 0;
      for (let n = 0; n < N; n++) {
        const i = d * N + n;
        h[i] = f(f(f(Math.exp(f(dt * A.data[i]))) * h[i]) + f(du * B.data[Bt + n]));
        acc = f(acc + f(h[i] * C.data[Bt + n]));
      }
      if (reset || patched) acc = replaceRow(h, d * N, N, patched, C.data, Bt);
      if (knocking) acc = knockoutRow(knock, t, d * N, N, reset || patched !== undefined, dt, du, B.data, C.data, Bt, d * N, 1, acc);
      y[t * D + d] = f(acc + f(Dskip.data[d] * u.data[t * D + d]));
    }
    for (const row of slots[t] ?? []) states.set(h, D * N * row);
  }
  return { y: { shape: [L, D], data: y }, h: { shape: [at.length, D, N], data: states } };
}

/** Mamba-2: scalar A and Δ per head, B/C per group (head k reads group floor(k / (heads / G))); `edit` as in selectiveScanF32. */
export function selectiveScanHeadsF32(x: F32, delta: F32, A: F32, B: F32, C: F32, Dskip: F32, groups: number, at: Int32Array, edit?: ScanEdit, patch?: PatchedState): { y: F32; h: F32 } {
  const L = x.shape[0];
  const heads = A.shape[0];
  const P = x.shape[1] / heads;
  const GN = B.shape[1];
  const N = GN / groups;
  const perGroup = heads / groups;
  const h = initialState(heads * P * N, patch);
  const y = new Float32Array(L * heads * P);
  const states = new Float32Array(at.length * h.length);
  const slots = stateSlots(at, L);
  const knock: KnockoutRow | undefined = edit?.knockout && { g: new Float32Array(h.length), ko: edit.knockout, A: A.data };
  for (let t = 0; t < L; t++) {
    const writes = !edit?.noWrite?.has(t);
    const reset = edit?.reset?.has(t) ?? false;
    const patched = !reset && patch?.token === t ? patch.h : undefined;
    const knocking = knock !== undefined && t >= knock.ko.source;
    for (let k = 0; k < heads; k++) {
      const dt = delta.data[t * heads + k];
      const decay = f(Math.exp(f(dt * A.data[k])));
      const bOff = t * GN + Math.floor(k / perGroup) * N;
      for (let p = 0; p < P; p++) {
        const c = k * P + p;
        const xv = x.data[t * heads * P + c];
        const dx = writes ? f(dt * xv) : 0;
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const i = c * N + n;
          h[i] = f(f(decay * h[i]) + f(dx * B.data[bOff + n]));
          acc = f(acc + f(h[i] * C.data[bOff + n]));
        }
        if (reset || patched) acc = replaceRow(h, c * N, N, patched, C.data, bOff);
        if (knocking) acc = knockoutRow(knock, t, c * N, N, reset || patched !== undefined, dt, dx, B.data, C.data, bOff, k, 0, acc);
        y[t * heads * P + c] = f(acc + f(Dskip.data[k] * xv));
      }
    }
    for (const row of slots[t] ?? []) states.set(h, h.length * row);
  }
  return { y: { shape: [L, heads * P], data: y }, h: { shape: [at.length, heads, P, N], data: states } };
}

/** Causal depthwise conv1d (left zero padding K−1), then SiLU x / (1 + exp(−x)). */
export function causalConvSiluF32(x: F32, w: F32, b?: F32): F32 {
  const [L, C] = x.shape;
  const K = w.shape[1];
  const y = new Float32Array(L * C);
  for (let t = 0; t < L; t++) {
    for (let c = 0; c < C; c++) {
      let s = b ? b.data[c] : 0;
      for (let k = 0; k < K; k++) {
        const src = t - K + 1 + k;
        if (src >= 0) s = f(s + f(w.data[c * K + k] * x.data[src * C + c]));
      }
      y[t * C + c] = f(s / f(1 + f(Math.exp(-s))));
    }
  }
  return { shape: [L, C], data: y };
}

export const hostLoopKernels: ScanKernels = {
  scan: ({ u, delta, A, B, C, D, z, statesAt, edit, patch }) => {
    const r = selectiveScanF32(read(u), read(delta), read(A), read(B), read(C), read(D), statesAt, edit, patch);
    const y = upload<tf.Rank.R2>(r.y);
    return {
      y,
      gated: z ? tf.tidy(() => tf.mul(y, tf.mul(z, tf.sigmoid(z))) as tf.Tensor2D) : undefined,
      h: statesAt.length ? upload<tf.Rank.R3>(r.h) : undefined,
    };
  },
  headScan: ({ x, delta, A, B, C, D, groups, statesAt, edit, patch }) => {
    const r = selectiveScanHeadsF32(read(x), read(delta), read(A), read(B), read(C), read(D), groups, statesAt, edit, patch);
    return { y: upload<tf.Rank.R2>(r.y), h: statesAt.length ? upload<tf.Rank.R4>(r.h) : undefined };
  },
  convSilu: (x, w, b) => upload<tf.Rank.R2>(causalConvSiluF32(read(x), read(w), b && read(b))),
};
