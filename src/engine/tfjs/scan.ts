/**
 * The selective scan on tfjs. tfjs has no scan op, and a loop over tokens costs one dispatch per
 * token; instead each chunk of tokens runs a Hillis–Steele prefix scan over the pairs
 * (Ā_t, B̄_t·u_t) in log2(chunk) steps — (a₁, b₁)∘(a₂, b₂) = (a₁a₂, a₂b₁ + b₂) — and the state
 * is carried from chunk to chunk. Every factor is a decay in [0, 1], so nothing overflows.
 * This runs on webgl; the CPU-memory backends (cpu, wasm) use the sequential loop of
 * hostLoopScan.ts, which does less work there. (WebGPU is the native engine, ../webgpu/.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { stateSlots } from '../internals';
import type { ScanEdit, StatePatch } from '../interventions';
import { hostLoopKernels } from './hostLoopScan';

/** What a scan is told to change (../interventions.ts); absent, the scan is the plain one, at no extra cost. */
export interface TfScanEdits {
  readonly edit?: ScanEdit;
  /** patch-state: the state after `patch.token`'s update is `patch.h` (its conv context is the mixer's). */
  readonly patch?: Pick<StatePatch, 'token' | 'h'>;
}

export interface TfScanInputs extends TfScanEdits {
  readonly u: tf.Tensor2D; // [L, D]
  readonly delta: tf.Tensor2D; // [L, D]
  readonly A: tf.Tensor2D; // [D, N], already −exp(A_log)
  readonly B: tf.Tensor2D; // [L, N]
  readonly C: tf.Tensor2D; // [L, N]
  readonly D: tf.Tensor1D; // [D]
  /** When given, `gated` = y ⊙ silu(z) is returned too. */
  readonly z?: tf.Tensor2D;
  /** Token positions whose state h_t is returned, in this order (repeats allowed). */
  readonly statesAt: Int32Array;
}

export interface TfScanOutputs {
  readonly y: tf.Tensor2D; // [L, D], includes D·u, before the gate
  readonly gated?: tf.Tensor2D;
  readonly h?: tf.Tensor3D; // [T, D, N]
}

export type TfScan = (inputs: TfScanInputs) => TfScanOutputs;

/** Mamba-2: scalar A per head, B/C per group. */
export interface TfHeadScanInputs extends TfScanEdits {
  readonly x: tf.Tensor2D; // [L, heads·P]
  readonly delta: tf.Tensor2D; // [L, heads]
  readonly A: tf.Tensor1D; // [heads]
  readonly B: tf.Tensor2D; // [L, G·N]
  readonly C: tf.Tensor2D; // [L, G·N]
  readonly D: tf.Tensor1D; // [heads]
  readonly groups: number;
  readonly statesAt: Int32Array;
}

export type TfHeadScan = (inputs: TfHeadScanInputs) => { y: tf.Tensor2D; h?: tf.Tensor4D };

/** Causal depthwise conv1d + SiLU: x [L, C], w [C, K], b [C]. */
export type TfConvSilu = (x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D) => tf.Tensor2D;

export interface ScanKernels {
  readonly scan: TfScan;
  readonly headScan: TfHeadScan;
  /** A fused conv; without one the forward uses tfjs's depthwiseConv2d. */
  readonly convSilu?: TfConvSilu;
}

export function scanKernelsFor(backend: string): ScanKernels {
  return backend === 'cpu' || backend === 'wasm' ? hostLoopKernels : TFJS_OPS_SCAN;
}

/** Tokens per chunk: bounds the [chunk, D, N] temporaries (12 MB at D=1536, N=16 in float32). */
const CHUNK = 128;

/**
 * Inclusive prefix scan along axis 0 of h_t = a_t·h_{t−1} + b_t, starting from h0.
 * `a` broadcasts against `b` ([T, …]); returns all T states.
 */
function linearRecurrence(a: tf.Tensor, b: tf.Tensor, h0: tf.Tensor | null): tf.Tensor {
  return tf.tidy(() => {
    const T = b.shape[0];
    let A = a;
    let Bv = b;
    for (let offset = 1; offset < T; offset *= 2) {
      // Combine each element with the one `offset` before it (identity (1, 0) past the start).
      const aPrev = shiftDown(A, offset, 1);
      const bPrev = shiftDown(Bv, offset, 0);
      Bv = tf.add(tf.mul(A, bPrev), Bv);
      A = tf.mul(A, aPrev);
    }
    return h0 ? tf.add(tf.mul(A, h0), Bv) : Bv;
  });
}

/** x shifted down by `offset` rows along axis 0, the top filled with `fill`. */
function shiftDown(x: tf.Tensor, offset: number, fill: number): tf.Tensor {
  const T = x.shape[0];
  const top = tf.fill([offset, ...x.shape.slice(1)], fill);
  return tf.concat([top, tf.slice(x, 0, T - offset)], 0);
}

/** Copies the chunk's states into their rows of `out` (row k is the state after token statesAt[k]). */
function gatherStates(states: tf.Tensor, chunkStart: number, slots: readonly (number[] | undefined)[], out: tf.Tensor[]): void {
  const T = states.shape[0];
  for (let t = chunkStart; t < chunkStart + T; t++) {
    for (const k of slots[t] ?? []) out[k] = tf.keep(tf.slice(states, t - chunkStart, 1));
  }
}

/**
 * Runs `chunkStep` over chunks of tokens, carrying the last state; concatenates the chunk
 * outputs and the captured states (in the order of statesAt, whatever the order of the chunks).
 * `from`: a pass whose states are zero before this token starts there, its outputs before it
 * zero (a knockout's pass, over its source's write alone). `h0`: the state before token 0 (freed
 * here), zeros without it.
 */
function chunked(L: number, statesAt: Int32Array, chunkStep: (start: number, T: number, carry: tf.Tensor | null, capture: (states: tf.Tensor) => void) => { y: tf.Tensor; last: tf.Tensor }, from = 0, h0: tf.Tensor | null = null) {
  const ys: tf.Tensor[] = [];
  const hs: tf.Tensor[] = [];
  const slots = stateSlots(statesAt, L);
  let carry: tf.Tensor | null = h0;
  for (let start = from; start < L; start += CHUNK) {
    const T = Math.min(CHUNK, L - start);
    const prev: tf.Tensor | null = carry;
    const result: { y: tf.Tensor; last: tf.Tensor } = tf.tidy(() => chunkStep(start, T, prev, (states) => gatherStates(states, start, slots, hs)));
    prev?.dispose();
    carry = result.last;
    ys.push(result.y);
  }
  (carry as tf.Tensor | null)?.dispose();
  if (from > 0) ys.unshift(tf.zeros([from, ...ys[0].shape.slice(1)]));
  const y = tf.concat(ys, 0);
  const h = hs.length ? tf.concat(hs, 0) : undefined;
  ys.forEach((t) => t.dispose());
  hs.forEach((t) => t.dispose());
  return { y, h };
}

/**
 * Per-token factors of one pass of the prefix scan: a_t ← a_t·a[t], b_t ← b_t·b[t] (+ `state` at
 * its token), and the pass's output C_t·h_t ← C_t·h_t·y[t]; each absent when it is all ones.
 */
interface PairMasks {
  readonly a?: Float32Array;
  readonly b?: Float32Array;
  readonly y?: Float32Array;
  /** Added to b at `token` (where a and b are zero): the state after that token is `h`. */
  readonly state?: { readonly token: number; readonly h: Float32Array };
  /** b is zero before this token, and so are the states: the pass starts there. */
  readonly from?: number;
  /** The state before token 0: a patch at token −1 (a chunk's carry in a long run). */
  readonly h0?: Float32Array;
}

/**
 * ablate-write is b_t = 0 (h_t = Ā_t·h_{t−1}); zero-state is (a_t, b_t) = (0, 0): h_t = 0, and
 * nothing before t reaches past it; patch-state is (a_t, b_t) = (0, h'): h_t = h'. A patch at
 * token −1 is no pair: it is the state the pass starts from.
 */
function editMasks(L: number, edit?: ScanEdit, patch?: TfScanEdits['patch']): PairMasks {
  if (patch?.token === -1) return { ...editMasks(L, edit), h0: Float32Array.from(patch.h) };
  if (!edit?.noWrite && !edit?.reset && !patch) return {};
  const b = new Float32Array(L).fill(1);
  edit?.noWrite?.forEach((t) => (b[t] = 0));
  if (!edit?.reset && !patch) return { b };
  const a = new Float32Array(L).fill(1);
  edit?.reset?.forEach((t) => (a[t] = b[t] = 0));
  if (!patch) return { a, b };
  a[patch.token] = b[patch.token] = 0;
  return { a, b, state: { token: patch.token, h: Float32Array.from(patch.h) } };
}

/**
 * The knocked-out token's own term: the same decays over its write alone, b = one-hot(source)·B̄u,
 * its C·g kept from `from` on (what is subtracted from y there). A reset or a patch (a = 0) ends it.
 */
function knockoutMasks(L: number, main: PairMasks, ko: NonNullable<ScanEdit['knockout']>): PairMasks {
  const b = new Float32Array(L);
  b[ko.source] = main.b?.[ko.source] ?? 1;
  const y = new Float32Array(L).fill(1, ko.from);
  return { a: main.a, b, y, from: ko.source };
}

/** x times the chunk's rows of `mask` (x itself without one), broadcast over x's other axes. */
function masked(x: tf.Tensor, mask: Float32Array | undefined, start: number, T: number): tf.Tensor {
  return mask ? tf.mul(x, tf.tensor(mask.subarray(start, start + T), [T, ...x.shape.slice(1).map(() => 1)])) : x;
}

/** The chunk's b_t [T, …state] under the masks: scaled, and the patched state added at its token when the chunk holds it. */
function maskedWrites(b: tf.Tensor, masks: PairMasks, start: number, T: number): tf.Tensor {
  const scaledB = masked(b, masks.b, start, T);
  const s = masks.state;
  if (!s || s.token < start || s.token >= start + T) return scaledB;
  const row = new Float32Array(T);
  row[s.token - start] = 1;
  const stateShape = b.shape.slice(1);
  return tf.add(scaledB, tf.mul(tf.tensor(row, [T, ...stateShape.map(() => 1)]), tf.tensor(s.h, [1, ...stateShape])));
}

/** One pass of a chunked prefix scan under `masks`: its C·h [L, channels], and the states at `at`. */
type ScanPass = (masks: PairMasks, at: Int32Array) => { y: tf.Tensor; h?: tf.Tensor };

/** C·h with the edits applied: the pass under the edits' masks, less a knocked-out token's term (a second pass). */
function editedPasses(pass: ScanPass, L: number, statesAt: Int32Array, { edit, patch }: TfScanEdits): { y: tf.Tensor; h?: tf.Tensor } {
  const masks = editMasks(L, edit, patch);
  const main = pass(masks, statesAt);
  if (!edit?.knockout) return main;
  const own = pass(knockoutMasks(L, masks, edit.knockout), new Int32Array(0));
  const y = tf.sub(main.y, own.y);
  main.y.dispose();
  own.y.dispose();
  return { y, h: main.h };
}

export const tfjsOpsScan: TfScan = ({ u, delta, A, B, C, D, z, statesAt, ...edits }) => {
  const [L, Dd] = u.shape;
  const N = A.shape[1];
  const A3 = tf.reshape(A, [1, Dd, N]);
  const pass: ScanPass = (masks, at) => chunked(L, at, (start, T, carry, capture) => {
    const dt = tf.reshape(tf.slice(delta, start, T), [T, Dd, 1]);
    const a = masked(tf.exp(tf.mul(dt, A3)), masks.a, start, T);
    const du = tf.mul(dt, tf.reshape(tf.slice(u, start, T), [T, Dd, 1]));
    const states = linearRecurrence(a, maskedWrites(tf.mul(du, tf.reshape(tf.slice(B, start, T), [T, 1, N])), masks, start, T), carry);
    capture(states);
    const y = masked(tf.sum(tf.mul(states, tf.reshape(tf.slice(C, start, T), [T, 1, N])), 2), masks.y, start, T);
    return { y, last: tf.slice(states, T - 1, 1) };
  }, masks.from, masks.h0 ? tf.tensor(masks.h0, [1, Dd, N]) : null);
  const scanned = editedPasses(pass, L, statesAt, edits);
  A3.dispose();
  const y = tf.tidy(() => tf.add(scanned.y, tf.mul(u, tf.reshape(D, [1, Dd]))) as tf.Tensor2D);
  scanned.y.dispose();
  const gated = z ? tf.tidy(() => tf.mul(y, tf.mul(z, tf.sigmoid(z))) as tf.Tensor2D) : undefined;
  return { y, gated, h: scanned.h as tf.Tensor3D | undefined };
};

export const tfjsOpsHeadScan: TfHeadScan = ({ x, delta, A, B, C, D, groups, statesAt, ...edits }) => {
  const L = x.shape[0];
  const heads = A.shape[0];
  const P = x.shape[1] / heads;
  const N = B.shape[1] / groups;
  const perGroup = heads / groups;
  // B and C per head: repeat each group's row for the heads that share it.
  const perHead = (m: tf.Tensor2D, start: number, T: number) =>
    tf.reshape(tf.tile(tf.reshape(tf.slice(m, start, T), [T, groups, 1, 1, N]), [1, 1, perGroup, 1, 1]), [T, heads, 1, N]);
  const pass: ScanPass = (masks, at) => chunked(L, at, (start, T, carry, capture) => {
    const dt = tf.reshape(tf.slice(delta, start, T), [T, heads, 1, 1]);
    const a = masked(tf.exp(tf.mul(dt, tf.reshape(A, [1, heads, 1, 1]))), masks.a, start, T);
    const dx = tf.mul(dt, tf.reshape(tf.slice(x, start, T), [T, heads, P, 1]));
    const states = linearRecurrence(a, maskedWrites(tf.mul(dx, perHead(B, start, T)), masks, start, T), carry);
    capture(states);
    const y = masked(tf.reshape(tf.sum(tf.mul(states, perHead(C, start, T)), 3), [T, heads * P]), masks.y, start, T);
    return { y, last: tf.slice(states, T - 1, 1) };
  }, masks.from, masks.h0 ? tf.tensor(masks.h0, [1, heads, P, N]) : null);
  const scanned = editedPasses(pass, L, statesAt, edits);
  const y = tf.tidy(() => {
    const skip = tf.reshape(tf.mul(tf.reshape(x, [L, heads, P]), tf.reshape(D, [1, heads, 1])), [L, heads * P]);
    return tf.add(scanned.y, skip) as tf.Tensor2D;
  });
  scanned.y.dispose();
  return { y, h: scanned.h as tf.Tensor4D | undefined };
};

const TFJS_OPS_SCAN: ScanKernels = { scan: tfjsOpsScan, headScan: tfjsOpsHeadScan };
