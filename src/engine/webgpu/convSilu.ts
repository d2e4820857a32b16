/**
 * Mamba's causal depthwise conv1d + SiLU (the float64 reference's causalConvSilu is the oracle):
 *   out[t, c] = silu(b[c] + Σ_k w[c, k] · x[t − K + 1 + k, c]),  x = 0 before the first token,
 * summed in the reference's order. X is a plain [L, C] plane; the output goes to column planes
 * (Mamba-2 splits xBC into u, B and C here).
 */
import type { KernelSpec } from './kernel';
import { MATH_WGSL } from './math';
import { planeIndexWgsl } from './planes';

export const CONV_THREADS = 64;

export function convSiluKernel(K: number, bias: boolean, planes: readonly number[]): KernelSpec {
  const taps = Array.from({ length: K }, (_, k) => {
    const back = K - 1 - k;
    const tap = `s = s + W[c * ${K} + ${k}] * X[index - ${back} * C];`;
    return back === 0 ? tap : `if (t >= ${back}) { ${tap} }`;
  });
  return {
    storage: [
      { name: 'X', type: 'f32' },
      { name: 'W', type: 'f32' },
      ...(bias ? [{ name: 'Bias', type: 'f32' } as const] : []),
      { name: 'result', type: 'f32', write: true },
    ],
    uniforms: [['rows', 'i32'], ['channels', 'i32']],
    workgroupSize: CONV_THREADS,
    entry: 'flat',
    body: `${MATH_WGSL}
${planeIndexWgsl('outAt', planes)}
fn main(index : i32) {
  let C = uniforms.channels;
  if (index >= uniforms.rows * C) { return; }
  let t = index / C;
  let c = index - t * C;
  var s = ${bias ? 'Bias[c]' : '0.0'};
  ${taps.join('\n  ')}
  result[outAt(uniforms.rows, t, c)] = siluOf(s);
}`,
  };
}
