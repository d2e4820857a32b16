/**
 * hidden_out = hidden_in + out, for a layer whose mixer output `out` is captured: out_proj then
 * writes `out` alone instead of adding the residual in its epilogue (matmul.ts), and this adds it.
 */
import type { KernelSpec } from './kernel';

export const ADD_THREADS = 64;

export function residualAddKernel(): KernelSpec {
  return {
    storage: [{ name: 'Residual', type: 'f32' }, { name: 'Out', type: 'f32' }, { name: 'result', type: 'f32', write: true }],
    uniforms: [['total', 'i32']],
    workgroupSize: ADD_THREADS,
    entry: 'flat',
    body: `
fn main(index : i32) {
  if (index >= uniforms.total) { return; }
  result[index] = Residual[index] + Out[index];
}`,
  };
}
