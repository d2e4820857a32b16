/**
 * torch.nn.Linear on WebGPU: Y[m, n] = Σ_k X[aOffset + m·K + k] · W[n·K + k] (+ bias[n]),
 * optionally softplus'd and/or added to a residual, with W in torch's [out, in] layout (so the
 * tied lm_head is the embedding buffer itself).
 *
 * Tiled: a workgroup of 16×16 threads computes a 64×64 output tile, stepping K 16 at a time
 * through workgroup-shared tiles of X and W; each thread accumulates 4×4 outputs in f32 at
 * rows ty + 16i and columns tx + 16j (so neighbouring threads read neighbouring shared words and
 * write neighbouring columns). Any M, N, K: loads outside the matrix read 0, stores are guarded.
 * On a CPU implementation a workgroup is one invocation with a 4×4 tile (kernel.ts: cooperativeThreads).
 */
import { barrier, cooperativeThreads, type KernelSpec } from './kernel';
import { MATH_WGSL } from './math';
import { planeIndexWgsl } from './planes';

/** Threads per side of a workgroup on a GPU; each computes 4×4 outputs, so a tile is 4·side square. */
const GPU_SIDE = 16;

export interface MatmulOptions {
  readonly bias: boolean;
  /** Δ = softplus(dt_proj(·)): applied after the bias. */
  readonly softplus: boolean;
  /** Adds Residual[m·N + n] last (out_proj into the residual stream). */
  readonly residual: boolean;
  /** Output column planes (planes.ts); one plane of width N is a plain [M, N] result. */
  readonly planes: readonly number[];
  readonly software: boolean;
}

function side(software: boolean): number {
  return Math.sqrt(cooperativeThreads(software, GPU_SIDE * GPU_SIDE));
}

export function matmulKernel(o: MatmulOptions): KernelSpec {
  const SIDE = side(o.software);
  const sync = barrier(SIDE * SIDE);
  return {
    storage: [
      { name: 'X', type: 'f32' },
      { name: 'W', type: 'f32' },
      ...(o.bias ? [{ name: 'Bias', type: 'f32' } as const] : []),
      ...(o.residual ? [{ name: 'Residual', type: 'f32' } as const] : []),
      { name: 'Y', type: 'f32', write: true },
    ],
    uniforms: [['M', 'i32'], ['N', 'i32'], ['K', 'i32'], ['aOffset', 'i32']],
    workgroupSize: SIDE * SIDE,
    entry: 'workgroup',
    body: `${MATH_WGSL}
${planeIndexWgsl('outAt', o.planes)}
const SIDE = ${SIDE};
const TILE = ${4 * SIDE};
var<workgroup> xs : array<array<f32, TILE>, 16>;
var<workgroup> ws : array<array<f32, TILE>, 16>;
fn main(group : vec3<u32>, local : u32) {
  let M = uniforms.M;
  let N = uniforms.N;
  let K = uniforms.K;
  let tx = i32(local) % SIDE;
  let ty = i32(local) / SIDE;
  let m0 = i32(group.y) * TILE;
  let n0 = i32(group.x) * TILE;
  var acc : array<array<f32, 4>, 4>;
  for (var k0 = 0; k0 < K; k0 = k0 + 16) {
    // TILE rows × 16 k of each operand, k fastest (coalesced along K).
    for (var i = 0; i < TILE * 16 / (SIDE * SIDE); i = i + 1) {
      let e = i32(local) + SIDE * SIDE * i;
      let r = e / 16;
      let kk = e % 16;
      let k = k0 + kk;
      var xv = 0.0;
      if (m0 + r < M && k < K) { xv = X[uniforms.aOffset + (m0 + r) * K + k]; }
      xs[kk][r] = xv;
      var wv = 0.0;
      if (n0 + r < N && k < K) { wv = W[(n0 + r) * K + k]; }
      ws[kk][r] = wv;
    }
    ${sync}
    for (var kk = 0; kk < 16; kk = kk + 1) {
      var a : array<f32, 4>;
      var b : array<f32, 4>;
      for (var i = 0; i < 4; i = i + 1) {
        a[i] = xs[kk][ty + SIDE * i];
        b[i] = ws[kk][tx + SIDE * i];
      }
      for (var i = 0; i < 4; i = i + 1) {
        for (var j = 0; j < 4; j = j + 1) { acc[i][j] = acc[i][j] + a[i] * b[j]; }
      }
    }
    ${sync}
  }
  for (var i = 0; i < 4; i = i + 1) {
    let m = m0 + ty + SIDE * i;
    for (var j = 0; j < 4; j = j + 1) {
      let n = n0 + tx + SIDE * j;
      if (m < M && n < N) {
        var v = acc[i][j];
        ${o.bias ? 'v = v + Bias[n];' : ''}
        ${o.softplus ? 'v = softplusOf(v);' : ''}
        ${o.residual ? 'v = v + Residual[m * N + n];' : ''}
        Y[outAt(M, m, n)] = v;
      }
    }
  }
}`,
  };
}

export function matmulWorkgroups(M: number, N: number, software: boolean): [number, number] {
  const tile = 4 * side(software);
  return [Math.ceil(N / tile), Math.ceil(M / tile)];
}
