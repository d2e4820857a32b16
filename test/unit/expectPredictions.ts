/** fp32 results against the float64 reference's, for the native WebGPU engine's tests: tensors within the fp32 tolerance, and next-token predictions. */
import * as assert from 'node:assert/strict';
import { DEFAULT_TOLERANCE, diffArrays } from '../../src/engine/analysis/compare';
import type { Predictions } from '../../src/engine/predictions';
import type { Tensor } from '../../src/engine/tensor';

export const TOL = DEFAULT_TOLERANCE.fp32;

/** Asserts `got` is within tolerance of `ref` and returns the normalized error. */
export function expectClose(got: ArrayLike<number>, ref: Tensor, what: string): number {
  const d = diffArrays(ref.data as Float64Array, got, ref.shape, TOL);
  assert.equal(d.nonFinite.a + d.nonFinite.b, 0, `${what}: non-finite values at ${JSON.stringify(d.nonFinite.first)}`);
  assert.equal(d.firstDivergence, null, `${what}: first element out of tolerance ${JSON.stringify(d.firstDivergence)} (max abs error ${d.maxAbsError})`);
  return d.normalizedError;
}

/** Top-k against the float64 logits' top-k: the same ids except where the two are tied within tolerance. */
export function expectPredictions(got: Predictions, ref: Predictions, what: string): number {
  const L = got.nextRank.length;
  for (let i = 0; i < L * ref.k; i++) {
    if (got.ids[i] !== ref.ids[i]) {
      assert.ok(Math.abs(got.probs[i] - ref.probs[i]) <= TOL.atol, `${what}: top-${ref.k} entry ${i} is id ${got.ids[i]}, the reference has ${ref.ids[i]} (probabilities ${got.probs[i]} vs ${ref.probs[i]})`);
    }
  }
  for (let t = 0; t + 1 < L; t++) assert.ok(Math.abs(got.nextRank[t] - ref.nextRank[t]) <= 1, `${what}: rank of the next token at ${t}: ${got.nextRank[t]} vs ${ref.nextRank[t]}`);
  assert.ok(Number.isNaN(got.nextProb[L - 1]) && got.nextRank[L - 1] === -1, `${what}: nothing follows the last token`);
  const probs = expectClose(got.probs, { shape: [L, ref.k], data: Float64Array.from(ref.probs) }, `${what} top-k probabilities`);
  const next = expectClose(got.nextProb.subarray(0, L - 1), { shape: [L - 1], data: Float64Array.from(ref.nextProb.subarray(0, L - 1)) }, `${what} next-token probability`);
  return Math.max(probs, next);
}
