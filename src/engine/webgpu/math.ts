/**
 * WGSL scalar functions the native kernels share. siluOf, decayOf and finiteA come from the
 * scan's SAFE_MATH_WGSL (../kernels/program.ts), so the scan and the rest of the forward agree.
 */
import { SAFE_MATH_WGSL } from '../kernels/program';

/**
 * torch softplus (threshold 20). log1p(e^v) by Kahan's log(u)·x/(u − 1), u = 1 + x: a plain
 * log(1 + e^v) loses all relative precision for v below about −8, where Δ is small but not zero.
 */
export const MATH_WGSL = /* wgsl */ `${SAFE_MATH_WGSL}
fn softplusOf(v : f32) -> f32 {
  if (v > 20.0) { return v; }
  let x = exp(v);
  let u = 1.0 + x;
  if (u == 1.0) { return x; }
  return log(u) * x / (u - 1.0);
}
`;
