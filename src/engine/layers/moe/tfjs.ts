/**
 * The mixtures of experts on TensorFlow.js: the router's logits come to the host (T × E values),
 * which routes every token as the reference does (reference.ts: route); then each expert runs once,
 * on the rows routed to it, and its weighted output is scattered back.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MoeOp } from '../hybrid/config';
import { linear, type W, type WeightLayout } from '../../tfjs/ops';
import type { TfOpWeights } from '../attention/tfjs';
import { gluTf } from '../mlp/tfjs';
import { route } from './reference';

export interface TfMoeStep {
  readonly out: W;
  readonly experts: W;
  readonly weights: W;
}

export function moeTf(op: MoeOp, w: TfOpWeights, x: W, layout: WeightLayout): TfMoeStep {
  const [L, H] = x.shape;
  const E = op.experts, k = op.topK;
  const logits = tf.tidy(() => linear(x, w(op.routerKey), layout));
  const rows = logits.dataSync();
  logits.dispose();
  const experts = new Float32Array(L * k), weights = new Float32Array(L * k);
  const routed: { rows: number[]; share: number[] }[] = Array.from({ length: E }, () => ({ rows: [], share: [] }));
  for (let t = 0; t < L; t++) {
    const { chosen, share } = route(op, rows.subarray(t * E, (t + 1) * E));
    chosen.forEach((e, j) => {
      routed[e].rows.push(t);
      routed[e].share.push(share[j]);
      experts[t * k + j] = e;
      weights[t * k + j] = share[j];
    });
  }
  const out = tf.tidy(() => {
    let sum: W = tf.zeros([L, H]);
    routed.forEach(({ rows: at, share }, e) => {
      if (!at.length) return;
      const idx = tf.tensor1d(at, 'int32');
      const gateUp: W | [W, W] = op.layout === 'fused' ? w(`${op.key}experts.${e}.gate_up`) : [w(`${op.key}experts.${e}.gate_proj.weight`), w(`${op.key}experts.${e}.up_proj.weight`)];
      const down = op.layout === 'fused' ? w(`${op.key}experts.${e}.down`) : w(`${op.key}experts.${e}.down_proj.weight`);
      const y = tf.mul(gluTf(tf.gather(x, idx), gateUp, down, layout), tf.tensor2d(share, [share.length, 1]));
      sum = tf.add(sum, tf.scatterND(tf.reshape(idx, [at.length, 1]), y, [L, H]));
    });
    return sum;
  });
  return { out, experts: tf.tensor2d(experts, [L, k]), weights: tf.tensor2d(weights, [L, k]) };
}
