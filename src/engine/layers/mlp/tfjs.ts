/** The families' MLPs on TensorFlow.js: the same computation as reference.ts, which they are tested against. */
import * as tf from '@tensorflow/tfjs-core';
import type { Activation, MlpOp } from '../hybrid/config';
import { cols, linear, scaled, silu, type W, type WeightLayout } from '../../tfjs/ops';
import type { TfOpWeights } from '../attention/tfjs';

const ACTIVATIONS: Readonly<Record<Activation, (x: W) => W>> = {
  silu,
  // torch's default GELU: x · Φ(x) with the exact erf.
  gelu: (x) => tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))))),
  relu2: (x) => tf.tidy(() => tf.square(tf.relu(x))),
};

/** act(gate) ⊙ up → down: one SwiGLU-style expert or MLP body (`gateUp` fused [gate | up] or the two apart). */
export function gluTf(x: W, gateUp: W | [W, W], down: W, layout: WeightLayout, act: Activation = 'silu', gateScale = 1): W {
  return tf.tidy(() => {
    let gate: W, up: W;
    if (Array.isArray(gateUp)) [gate, up] = [linear(x, gateUp[0], layout), linear(x, gateUp[1], layout)];
    else {
      const gu = linear(x, gateUp, layout);
      const I = gu.shape[1]! / 2;
      [gate, up] = [cols(gu, 0, I), cols(gu, I, I)];
    }
    return linear(tf.mul(ACTIVATIONS[act](scaled(gate, gateScale)), up), down, layout);
  });
}

export function mlpTf(op: MlpOp, w: TfOpWeights, x: W, layout: WeightLayout): W {
  return tf.tidy(() => {
    if (op.layout === 'ungated') return linear(ACTIVATIONS[op.act](linear(x, w(`${op.key}up_proj.weight`), layout)), w(`${op.key}down_proj.weight`), layout);
    if (op.layout === 'separate') {
      const y = gluTf(x, [w(`${op.key}gate_proj.weight`), w(`${op.key}up_proj.weight`)], w(`${op.key}down_proj.weight`), layout, op.act, op.gateScale);
      return scaled(y, op.downScale);
    }
    const [input, output] = op.fusedNames ?? ['input_linear', 'output_linear'];
    if (!op.adapter) return gluTf(x, w(`${op.key}${input}.weight`), w(`${op.key}${output}.weight`), layout, op.act);
    // Zamba2: the adapter adds to the fused projection's output before the split.
    const at = `${op.key}${input}_adapter_list.${op.adapter.index}.`;
    const gu = tf.add(linear(x, w(`${op.key}${input}.weight`), layout), linear(linear(x, w(`${at}0.weight`), layout), w(`${at}1.weight`), layout));
    const I = op.intermediate;
    return linear(tf.mul(ACTIVATIONS[op.act](cols(gu, 0, I)), cols(gu, I, I)), w(`${op.key}${output}.weight`), layout);
  });
}
