/** Causal self-attention on TensorFlow.js: the same computation as reference.ts, which it is tested against. */
import * as tf from '@tensorflow/tfjs-core';
import type { AttentionOp } from '../hybrid/config';
import { linear, type W, type WeightLayout } from '../../tfjs/ops';

/** The weights by full key, on the backend (projections in the model's layout). */
export type TfOpWeights = (key: string) => W;

function project(x: W, w: TfOpWeights, layout: WeightLayout, key: string, list: string, op: AttentionOp): W {
  const y = linear(x, w(key), layout);
  if (!op.adapter) return y;
  const at = `${list}${op.adapter.index}.`;
  return tf.tidy(() => tf.add(y, linear(linear(x, w(`${at}0.weight`), layout), w(`${at}1.weight`), layout)));
}

/** RoPE on [L, heads, d]: dims j and j + dims/2 of each head rotate by t·θ^(−2j/dims); the rest pass. */
function rotate(x: W, dims: number, theta: number): W {
  return tf.tidy(() => {
    const [L, heads, d] = x.shape;
    const half = dims / 2;
    const angles = tf.outerProduct(tf.range(0, L, 1, 'float32') as tf.Tensor1D, tf.tensor1d(Array.from({ length: half }, (_, j) => theta ** ((-2 * j) / dims)), 'float32'));
    const [cos, sin] = [tf.reshape(tf.cos(angles), [L, 1, half]), tf.reshape(tf.sin(angles), [L, 1, half])];
    const a = tf.slice(x, [0, 0, 0], [L, heads, half]);
    const b = tf.slice(x, [0, 0, half], [L, heads, half]);
    const parts = [tf.sub(tf.mul(a, cos), tf.mul(b, sin)), tf.add(tf.mul(b, cos), tf.mul(a, sin))];
    if (dims < d) parts.push(tf.slice(x, [0, 0, dims], [L, heads, d - dims]));
    return tf.concat(parts, 2);
  });
}

/** The attention's output, and its pattern [L, heads, L] when `keepPattern`. */
export function attentionTf(op: AttentionOp, w: TfOpWeights, x: W, layout: WeightLayout, keepPattern = false): { out: W; pattern?: W } {
  return tf.tidy(() => {
    const [L] = x.shape;
    const { heads, kvHeads, headDim: d } = op;
    let q = tf.reshape(project(x, w, layout, `${op.key}q_proj.weight`, `${op.key}linear_q_adapter_list.`, op), [L, heads, d]);
    let k = tf.reshape(project(x, w, layout, `${op.key}k_proj.weight`, `${op.key}linear_k_adapter_list.`, op), [L, kvHeads, d]);
    const v = tf.reshape(project(x, w, layout, `${op.key}v_proj.weight`, `${op.key}linear_v_adapter_list.`, op), [L, kvHeads, d]);
    if (op.keyScale !== 1) k = tf.mul(k, op.keyScale);
    if (op.rope) [q, k] = [rotate(q, op.rope.dims, op.rope.theta), rotate(k, op.rope.dims, op.rope.theta)];
    // Query head h reads key/value head ⌊h·kv/heads⌋ (repeat_kv).
    const kvOf = tf.tensor1d(Array.from({ length: heads }, (_, h) => Math.floor(h / (heads / kvHeads))), 'int32');
    const [qh, kh, vh] = [tf.transpose(q, [1, 0, 2]), tf.gather(tf.transpose(k, [1, 0, 2]), kvOf), tf.gather(tf.transpose(v, [1, 0, 2]), kvOf)];
    const scores = tf.mul(tf.matMul(qh as tf.Tensor3D, kh as tf.Tensor3D, false, true), op.scale);
    const causal = tf.linalg.bandPart(tf.ones([L, L]), -1, 0);
    const probs = tf.softmax(tf.where(tf.cast(causal, 'bool'), scores, tf.fill(scores.shape, -Infinity)));
    const o = tf.reshape(tf.transpose(tf.matMul(probs as tf.Tensor3D, vh as tf.Tensor3D), [1, 0, 2]), [L, heads * d]);
    const out = linear(o, w(`${op.key}o_proj.weight`), layout);
    return keepPattern ? { out, pattern: tf.transpose(probs, [1, 0, 2]) } : { out };
  });
}
