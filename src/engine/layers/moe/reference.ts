/**
 * The families' mixtures of experts in float64: a linear router over the experts, then Jamba's
 * softmax over all of them with the top k kept as they are (not renormalised), or Granite's top k
 * of the logits with a softmax over those k; each chosen expert a SwiGLU, summed with its weight.
 * Jamba stores each expert's projections; Granite one [E, 2I, H] input ([gate; up]) and one
 * [E, H, I] output tensor. Ties between logits go to the lower expert index.
 */
import type { MoeOp } from '../hybrid/config';
import type { OpWeights, WeightSpec } from '../hybrid/weights';
import { linear, type F64 } from '../../reference/ops';
import type { Tensor } from '../../tensor';
import { swiglu } from '../mlp/reference';

export function moeWeights(op: MoeOp, dModel: number): WeightSpec[] {
  const E = op.experts, I = op.intermediate;
  const router = { key: op.routerKey, shape: [E, dModel] };
  if (op.layout === 'fused') return [router, { key: `${op.key}input_linear.weight`, shape: [E, 2 * I, dModel] }, { key: `${op.key}output_linear.weight`, shape: [E, dModel, I] }];
  return [router, ...Array.from({ length: E }, (_, e) => [
    { key: `${op.key}experts.${e}.gate_proj.weight`, shape: [I, dModel] },
    { key: `${op.key}experts.${e}.up_proj.weight`, shape: [I, dModel] },
    { key: `${op.key}experts.${e}.down_proj.weight`, shape: [dModel, I] },
  ]).flat()];
}

export interface MoeStep {
  readonly out: F64;
  /** [L, k]: the chosen experts, in the router's order (most weight first), and their weights. */
  readonly experts: F64;
  readonly weights: F64;
}

/** The top k of `scores` (descending; ties to the lower index). */
function topK(scores: Float64Array, k: number): number[] {
  return [...scores.keys()].sort((a, b) => scores[b] - scores[a] || a - b).slice(0, k);
}

function softmax(v: readonly number[]): number[] {
  const max = Math.max(...v);
  const e = v.map((x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

/** A [rows, cols] view of expert e's slice of a fused [E, rows, cols] tensor. */
export function expertSlice<T extends Float32Array | Float64Array>(t: Tensor<T>, e: number): Tensor<T> {
  const [, rows, cols] = t.shape;
  return { shape: [rows, cols], data: t.data.subarray(e * rows * cols, (e + 1) * rows * cols) as T };
}

/** One token's routing from its router logits: the experts chosen (most weight first) and their weights. Both engines route here. */
export function route(op: MoeOp, row: ArrayLike<number>): { chosen: number[]; share: number[] } {
  if (op.routing === 'softmax-topk') {
    const p = Float64Array.from(softmax(Array.from(row)));
    const chosen = topK(p, op.topK);
    return { chosen, share: chosen.map((e) => p[e]) };
  }
  const chosen = topK(Float64Array.from(row), op.topK);
  return { chosen, share: softmax(chosen.map((e) => row[e])) };
}

export function moeReference(op: MoeOp, w: OpWeights, x: F64): MoeStep {
  const [L, H] = x.shape;
  const k = op.topK, E = op.experts;
  const logits = linear(x, w(op.routerKey));
  const out = new Float64Array(L * H);
  const experts = new Float64Array(L * k), weights = new Float64Array(L * k);
  for (let t = 0; t < L; t++) {
    const { chosen, share } = route(op, logits.data.subarray(t * E, (t + 1) * E));
    const xt: F64 = { shape: [1, H], data: x.data.subarray(t * H, (t + 1) * H) };
    chosen.forEach((e, j) => {
      const y = op.layout === 'fused'
        ? swiglu(xt, { fused: expertSlice(w(`${op.key}input_linear.weight`), e) }, expertSlice(w(`${op.key}output_linear.weight`), e))
        : swiglu(xt, { gate: w(`${op.key}experts.${e}.gate_proj.weight`), up: w(`${op.key}experts.${e}.up_proj.weight`) }, w(`${op.key}experts.${e}.down_proj.weight`));
      for (let i = 0; i < H; i++) out[t * H + i] += share[j] * y.data[i];
      experts[t * k + j] = e;
      weights[t * k + j] = share[j];
    });
  }
  return { out: { shape: [L, H], data: out }, experts: { shape: [L, k], data: experts }, weights: { shape: [L, k], data: weights } };
}
