/**
 * Mamba's causal depthwise conv1d followed by SiLU, in one dispatch (tfjs would need a pad, a
 * depthwise conv2d, a bias add and a sigmoid-multiply, each a pass over [L, C]):
 *   out[t, c] = silu(b[c] + Σ_k w[c, k] · x[t − K + 1 + k, c]),  x = 0 before the first token.
 */
import * as tf from '@tensorflow/tfjs-core';
import { runFlatProgram, SAFE_MATH_WGSL } from './program';

/** x [L, C], w [C, K], b [C] → [L, C]. */
export function webgpuConvSilu(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  const [L, C] = x.shape;
  const K = w.shape[1];
  if (w.shape[0] !== C) throw new RangeError(`conv: weight has shape [${w.shape.join(', ')}], expected [${C}, K]`);
  if (b && (b.shape.length !== 1 || b.shape[0] !== C)) throw new RangeError(`conv: bias has shape [${b.shape.join(', ')}], expected [${C}]`);
  const out = runFlatProgram({
    key: `mamba_conv_silu_${K}_${b ? 'b' : ''}`,
    inputs: b ? [['X', x], ['W', w], ['Bias', b]] : [['X', x], ['W', w]],
    uniforms: [{ name: 'channels', value: C }, { name: 'total', value: L * C }],
    threads: L * C,
    outputSize: L * C,
    code: `${SAFE_MATH_WGSL}
fn main(index : i32) {
  if (index >= uniforms.total) { return; }
  let channels = uniforms.channels;
  let t = index / channels;
  let c = index - t * channels;
  var s = ${b ? 'Bias[c]' : '0.0'};
  ${Array.from({ length: K }, (_, k) => {
    const back = K - 1 - k;
    return back === 0 ? `s = s + W[c * ${K} + ${k}] * X[index];` : `if (t >= ${back}) { s = s + W[c * ${K} + ${k}] * X[index - ${back} * channels]; }`;
  }).join('\n  ')}
  result[index] = siluOf(s);
}`,
  });
  const y = tf.reshape(out, [L, C]) as tf.Tensor2D;
  out.dispose();
  return y;
}
