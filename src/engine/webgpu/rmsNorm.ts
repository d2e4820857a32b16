/**
 * RMSNorm over groups of `groupSize` columns: one workgroup per (group, row) sums the squares
 * in f32 with a tree reduction. 'gated' normalizes y ⊙ silu(z) instead of X (Mamba-2's gated
 * norm, per group as the reference forward does: mamba_ssm's RMSNormGated with group_size
 * d_inner / ngroups); 'gateAfter' normalizes Y and then multiplies by silu(Z) (Falcon-H1's
 * norm_before_gate); 'weightless' has no scale (FalconMamba's norms on dt, B and C).
 */
import { barrier, cooperativeThreads, type KernelSpec } from './kernel';
import { MATH_WGSL } from './math';

export interface RmsNormOptions {
  readonly gated?: boolean;
  readonly gateAfter?: boolean;
  readonly weightless?: boolean;
  readonly software: boolean;
}

export function rmsNormKernel({ gated = false, gateAfter = false, weightless = false, software }: RmsNormOptions): KernelSpec {
  const THREADS = cooperativeThreads(software, 64);
  const sync = barrier(THREADS);
  const valueAt = gated ? '(Y[i] * siluOf(Z[i]))' : gateAfter ? 'Y[i]' : 'X[i]';
  return {
    storage: [
      ...(gated || gateAfter ? [{ name: 'Y', type: 'f32' } as const, { name: 'Z', type: 'f32' } as const] : [{ name: 'X', type: 'f32' } as const]),
      ...(weightless ? [] : [{ name: 'Weight', type: 'f32' } as const]),
      { name: 'result', type: 'f32', write: true },
    ],
    uniforms: [['width', 'i32'], ['groupSize', 'i32'], ['eps', 'f32']],
    workgroupSize: THREADS,
    entry: 'workgroup',
    body: `${MATH_WGSL}
var<workgroup> partial : array<f32, ${THREADS}>;
fn main(group : vec3<u32>, local : u32) {
  let size = uniforms.groupSize;
  let first = i32(group.x) * size;
  let base = i32(group.y) * uniforms.width + first;
  var ss = 0.0;
  for (var j = i32(local); j < size; j = j + ${THREADS}) {
    let i = base + j;
    let v = ${valueAt};
    ss = ss + v * v;
  }
  partial[local] = ss;
  ${sync}
  for (var s = ${THREADS >> 1}u; s > 0u; s = s / 2u) {
    if (local < s) { partial[local] = partial[local] + partial[local + s]; }
    ${sync}
  }
  let r = 1.0 / sqrt(partial[0] / f32(size) + uniforms.eps);
  for (var j = i32(local); j < size; j = j + ${THREADS}) {
    let i = base + j;
    result[i] = ${valueAt} * r${weightless ? '' : ' * Weight[first + j]'}${gateAfter ? ' * siluOf(Z[i])' : ''};
  }
}`,
  };
}

/** (groups, rows): one workgroup per group of each row. */
export function rmsNormWorkgroups(rows: number, width: number, groupSize: number): [number, number] {
  return [width / groupSize, rows];
}
