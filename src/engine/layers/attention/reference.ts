/**
 * Causal self-attention in float64: multi-head or grouped-query (query head j reads key/value head
 * ⌊j·kv/heads⌋, as transformers' repeat_kv), RoPE over the leading `rope.dims` of each head with
 * the half-split (rotate_half) convention, the family's score scale, and Zamba2's per-use LoRA
 * adapters on q, k and v. A transcription of the families' attention modules (transformers 5.17),
 * the angles and the softmax in float64 (transformers rounds them to float32). The pattern
 * [L, heads, L] is returned only when asked for: it is O(L²).
 */
import type { AdapterSpec, AttentionOp } from '../hybrid/config';
import type { OpWeights, WeightSpec } from '../hybrid/weights';
import { add, linear, type F64 } from '../../reference/ops';

function adapterWeights(base: string, adapter: AdapterSpec | undefined, inDim: number, outDim: number): WeightSpec[] {
  if (!adapter) return [];
  const at = `${base}${adapter.index}.`;
  return [{ key: `${at}0.weight`, shape: [adapter.rank, inDim] }, { key: `${at}1.weight`, shape: [outDim, adapter.rank] }];
}

export function attentionWeights(op: AttentionOp, dModel: number): WeightSpec[] {
  const q = op.heads * op.headDim, kv = op.kvHeads * op.headDim;
  return [
    { key: `${op.key}q_proj.weight`, shape: [q, op.inDim] },
    { key: `${op.key}k_proj.weight`, shape: [kv, op.inDim] },
    { key: `${op.key}v_proj.weight`, shape: [kv, op.inDim] },
    { key: `${op.key}o_proj.weight`, shape: [dModel, q] },
    ...adapterWeights(`${op.key}linear_q_adapter_list.`, op.adapter, op.inDim, q),
    ...adapterWeights(`${op.key}linear_k_adapter_list.`, op.adapter, op.inDim, kv),
    ...adapterWeights(`${op.key}linear_v_adapter_list.`, op.adapter, op.inDim, kv),
  ];
}

/** x · Wᵀ, plus the adapter's x · A₀ᵀ · A₁ᵀ when the op has one. */
function project(x: F64, w: OpWeights, key: string, adapterList: string, adapter: AdapterSpec | undefined): F64 {
  const y = linear(x, w(key));
  if (!adapter) return y;
  const at = `${adapterList}${adapter.index}.`;
  return add(y, linear(linear(x, w(`${at}0.weight`)), w(`${at}1.weight`)));
}

/** RoPE in place on [L, heads·d]: in each head, dims j and j + dims/2 (j < dims/2) rotate by t·θ^(−2j/dims). */
function rotate(x: F64, heads: number, d: number, dims: number, theta: number): void {
  const [L] = x.shape;
  const half = dims / 2;
  for (let t = 0; t < L; t++) {
    for (let j = 0; j < half; j++) {
      const angle = t / theta ** ((2 * j) / dims);
      const cos = Math.cos(angle), sin = Math.sin(angle);
      for (let h = 0; h < heads; h++) {
        const at = t * heads * d + h * d;
        const a = x.data[at + j], b = x.data[at + j + half];
        x.data[at + j] = a * cos - b * sin;
        x.data[at + j + half] = b * cos + a * sin;
      }
    }
  }
}

export interface AttentionStep {
  readonly out: F64;
  /** [L, heads, L] (the query token first, as every dump tensor), row (t, h) the weights over positions ≤ t; only when asked for. */
  readonly pattern?: F64;
}

export function attentionReference(op: AttentionOp, w: OpWeights, x: F64, keepPattern = false): AttentionStep {
  const [L] = x.shape;
  const { heads, kvHeads, headDim: d } = op;
  const q = project(x, w, `${op.key}q_proj.weight`, `${op.key}linear_q_adapter_list.`, op.adapter);
  const k = project(x, w, `${op.key}k_proj.weight`, `${op.key}linear_k_adapter_list.`, op.adapter);
  const v = project(x, w, `${op.key}v_proj.weight`, `${op.key}linear_v_adapter_list.`, op.adapter);
  if (op.keyScale !== 1) k.data.forEach((val, i) => (k.data[i] = val * op.keyScale));
  if (op.rope) {
    rotate(q, heads, d, op.rope.dims, op.rope.theta);
    rotate(k, kvHeads, d, op.rope.dims, op.rope.theta);
  }
  const o = new Float64Array(L * heads * d);
  const pattern = keepPattern ? new Float64Array(heads * L * L) : undefined;
  const scores = new Float64Array(L);
  const perKv = heads / kvHeads;
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / perKv);
    for (let t = 0; t < L; t++) {
      let max = -Infinity;
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        for (let i = 0; i < d; i++) dot += q.data[t * heads * d + h * d + i] * k.data[s * kvHeads * d + g * d + i];
        scores[s] = dot * op.scale;
        if (scores[s] > max) max = scores[s];
      }
      let sum = 0;
      for (let s = 0; s <= t; s++) sum += (scores[s] = Math.exp(scores[s] - max));
      for (let s = 0; s <= t; s++) {
        const p = scores[s] / sum;
        if (pattern) pattern[t * heads * L + h * L + s] = p;
        for (let i = 0; i < d; i++) o[t * heads * d + h * d + i] += p * v.data[s * kvHeads * d + g * d + i];
      }
    }
  }
  const out = linear({ shape: [L, heads * d], data: o }, w(`${op.key}o_proj.weight`));
  return pattern ? { out, pattern: { shape: [L, heads, L], data: pattern } } : { out };
}
