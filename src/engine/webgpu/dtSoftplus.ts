/**
 * Mamba-2's Δ: clamp(softplus(dt + dt_bias[h]), lo, hi) per (token, head), as the reference
 * forward computes it (Mamba-1's Δ is the dt_proj matmul's softplus epilogue instead).
 */
import type { KernelSpec } from './kernel';
import { MATH_WGSL } from './math';

export const DT_THREADS = 64;

export function dtSoftplusKernel(): KernelSpec {
  return {
    storage: [{ name: 'Dt', type: 'f32' }, { name: 'DtBias', type: 'f32' }, { name: 'result', type: 'f32', write: true }],
    uniforms: [['total', 'i32'], ['heads', 'i32'], ['lo', 'f32'], ['hi', 'f32']],
    workgroupSize: DT_THREADS,
    entry: 'flat',
    body: `${MATH_WGSL}
fn main(index : i32) {
  if (index >= uniforms.total) { return; }
  let v = softplusOf(Dt[index] + DtBias[index % uniforms.heads]);
  result[index] = min(uniforms.hi, max(uniforms.lo, v));
}`,
  };
}
