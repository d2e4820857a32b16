/** WGSL scalar functions the native kernels share, so the scan and the rest of the forward agree. */

/**
 * Exponentials that can neither overflow nor meet an argument a software exp mishandles:
 * Δ·A is ≤ 0 for every real model, and below −80 the factor (e^−80 ≈ 2e−35) is zero for any
 * tolerance; A itself is kept finite so Δ·A is never 0·∞ when A_log is huge.
 */
export const SAFE_MATH_WGSL = /* wgsl */ `
fn finiteA(a : f32) -> f32 { return max(a, -1.0e30); }
fn decayOf(x : f32) -> f32 { return exp(max(x, -80.0)); }
fn siluOf(v : f32) -> f32 { return v / (1.0 + exp(clamp(-v, -80.0, 80.0))); }
`;

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
