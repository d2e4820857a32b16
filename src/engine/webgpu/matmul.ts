/**
 * torch.nn.Linear on WebGPU: Y[m, n] = Σ_k X[aOffset + m·K + k] · W[n·K + k] (+ bias[n]),
 * optionally softplus'd and/or added to a residual, with W in torch's [out, in] layout (so the
 * tied lm_head is the embedding buffer itself).
 *
 * Tiled: a workgroup of 16×16 threads computes a (16·rows)×(16·cols) output tile, stepping K 16
 * at a time through workgroup-shared tiles of X and W; each thread accumulates rows×cols outputs
 * in f32 at rows ty + 16i and columns tx + 16j, so neighbouring threads read neighbouring shared
 * words and write neighbouring columns. The accumulators are named registers, unrolled by the
 * generator: an array that a driver fails to unroll lives in memory (on the H200, a 3-plane
 * in_proj ran 50× slower so). A larger micro-tile does more multiply-adds per shared load;
 * chooseTile and chooseSplits pick from an H200 sweep (bench/matmulSweep.ts). Any M, N, K: loads
 * outside the matrix read 0, stores are guarded. On a CPU implementation a workgroup is one
 * invocation with a 4×4 tile (kernel.ts: cooperativeThreads).
 *
 * Split-K: an output too small to fill the GPU with workgroups (x_proj: L × 80) but with a long
 * K (1536) is computed as `splits` partial products over slices of K, side by side (workgroup z),
 * then summed by a second dispatch that applies the epilogue.
 */
import { barrier, cooperativeThreads, unrolled as each, type BufferRange, type Dispatch, type KernelCache, type KernelSpec } from './kernel';
import { MATH_WGSL } from './math';
import { planeIndexWgsl } from './planes';
import { halfAtWgsl, type WeightFormat } from './weightFormat';

/** Threads per side of a workgroup on a GPU. */
const GPU_SIDE = 16;
/** K per step through the shared tiles. */
const K_STEP = 16;

export interface MatmulOptions {
  readonly bias: boolean;
  /** Δ = softplus(dt_proj(·)): applied after the bias. */
  readonly softplus: boolean;
  /** Adds Residual[m·N + n] last (out_proj into the residual stream). */
  readonly residual: boolean;
  /** Output column planes (planes.ts); one plane of width N is a plain [M, N] result. */
  readonly planes: readonly number[];
  readonly software: boolean;
  /** How W is stored (weightFormat.ts): f32, or 16-bit pairs packed in u32 words, unpacked as they are read (default f32). */
  readonly weights?: WeightFormat;
}

/** Outputs per thread: rows × cols. */
export interface MatmulTile {
  readonly rows: 4 | 8;
  readonly cols: 4 | 8;
}

export interface MatmulShape {
  readonly M: number;
  readonly N: number;
  readonly K: number;
  /** Element of X where row 0 starts (a block of rows, or the gated half of the scan's output). */
  readonly aOffset: number;
}

/** WGSL filling workgroup tile `target` (`rows` × KS) from `value`, zero where `inBounds` fails or k passes the slice. */
function tileLoad(target: string, rows: string, inBounds: string, value: string): string {
  return `for (var i = 0; i < ${rows} * KS / (SIDE * SIDE); i = i + 1) {
      let e = i32(local) + SIDE * SIDE * i;
      let r = e / KS;
      let kk = e % KS;
      let k = k0 + kk;
      var v = 0.0;
      if (${inBounds} && k < kEnd) { v = ${value}; }
      ${target}[kk][r] = v;
    }`;
}

function side(software: boolean): number {
  return Math.sqrt(cooperativeThreads(software, GPU_SIDE * GPU_SIDE));
}

/** Workgroups an H200 keeps busy: 132 SMs, two 256-thread workgroups resident on each. */
const FULL_GPU_WORKGROUPS = 264;

/**
 * The micro-tile: 8×8 outputs per thread (a 128×128 tile) on a GPU, which the H200 sweep found
 * fastest or level for every projection of the 130m models once small outputs are split over K
 * (chooseSplits); 4×4 for a K too short to amortize the larger tile's loads (dt_proj, K 48), and
 * on a CPU implementation.
 */
export function chooseTile(shape: MatmulShape, software: boolean): MatmulTile {
  return software || shape.K < 128 ? { rows: 4, cols: 4 } : { rows: 8, cols: 8 };
}

/** Bias, softplus and residual on v, the output at (m, n), then its store into the planes. */
function epilogue(o: MatmulOptions): string {
  return `${o.bias ? 'v = v + Bias[n];' : ''}
        ${o.softplus ? 'v = softplusOf(v);' : ''}
        ${o.residual ? 'v = v + Residual[m * N + n];' : ''}
        Y[outAt(M, m, n)] = v;`;
}

function epilogueStorage(o: MatmulOptions) {
  return [
    ...(o.bias ? [{ name: 'Bias', type: 'f32' } as const] : []),
    ...(o.residual ? [{ name: 'Residual', type: 'f32' } as const] : []),
    { name: 'Y', type: 'f32', write: true } as const,
  ];
}

/**
 * The tiled product; with `partial`, workgroup z computes K slice z (uniform kSlice wide) and
 * stores its raw sums at Y[z·M·N + m·N + n] for splitSumKernel, without the epilogue.
 */
export function matmulKernel(o: MatmulOptions, tile: MatmulTile, partial = false): KernelSpec {
  const SIDE = side(o.software);
  const sync = barrier(SIDE * SIDE);
  const TM = tile.rows, TN = tile.cols;
  return {
    storage: [{ name: 'X', type: 'f32' }, { name: 'W', type: o.weights && o.weights !== 'f32' ? 'u32' : 'f32' }, ...(partial ? [{ name: 'Y', type: 'f32', write: true } as const] : epilogueStorage(o))],
    uniforms: [['M', 'i32'], ['N', 'i32'], ['K', 'i32'], ['aOffset', 'i32'], ['kSlice', 'i32']],
    workgroupSize: SIDE * SIDE,
    entry: 'workgroup',
    body: `${MATH_WGSL}
${planeIndexWgsl('outAt', o.planes)}
${o.weights && o.weights !== 'f32' ? halfAtWgsl('W', o.weights) : ''}
const SIDE = ${SIDE};
const TM = ${TM};
const TN = ${TN};
const TILE_M = ${TM * SIDE};
const TILE_N = ${TN * SIDE};
const KS = ${K_STEP};
var<workgroup> xs : array<array<f32, TILE_M>, KS>;
var<workgroup> ws : array<array<f32, TILE_N>, KS>;
fn store(M : i32, N : i32, m : i32, n : i32, z : i32, value : f32) {
  if (m >= M || n >= N) { return; }
  var v = value;
  ${partial ? 'Y[(z * M + m) * N + n] = v;' : epilogue(o)}
}
fn main(group : vec3<u32>, local : u32) {
  let M = uniforms.M;
  let N = uniforms.N;
  let K = uniforms.K;
  let tx = i32(local) % SIDE;
  let ty = i32(local) / SIDE;
  let m0 = i32(group.y) * TILE_M;
  let n0 = i32(group.x) * TILE_N;
  ${each(TM * TN, (q) => `var acc${q} = 0.0;`)}
  let kBegin = i32(group.z) * uniforms.kSlice;
  let kEnd = min(K, kBegin + uniforms.kSlice);
  for (var k0 = kBegin; k0 < kEnd; k0 = k0 + KS) {
    // The tiles' rows × KS k of each operand, k fastest (coalesced along K).
    ${tileLoad('xs', 'TILE_M', 'm0 + r < M', 'X[uniforms.aOffset + (m0 + r) * K + k]')}
    ${tileLoad('ws', 'TILE_N', 'n0 + r < N', o.weights && o.weights !== 'f32' ? 'halfAt((n0 + r) * K + k)' : 'W[(n0 + r) * K + k]')}
    ${sync}
    for (var kk = 0; kk < KS; kk = kk + 1) {
      ${each(TM, (i) => `let a${i} = xs[kk][ty + ${SIDE * i}];`)}
      ${each(TN, (j) => `let b${j} = ws[kk][tx + ${SIDE * j}];`)}
      ${each(TM * TN, (q) => `acc${q} = acc${q} + a${Math.floor(q / TN)} * b${q % TN};`)}
    }
    ${sync}
  }
  ${each(TM * TN, (q) => `store(M, N, m0 + ty + ${SIDE * Math.floor(q / TN)}, n0 + tx + ${SIDE * (q % TN)}, i32(group.z), acc${q});`)}
}`,
  };
}

/** The sum of a split-K product's partials, then the epilogue: one invocation per output. */
export function splitSumKernel(o: MatmulOptions, splits: number): KernelSpec {
  return {
    storage: [{ name: 'P', type: 'f32' }, ...epilogueStorage(o)],
    uniforms: [['M', 'i32'], ['N', 'i32']],
    workgroupSize: SUM_THREADS,
    entry: 'flat',
    body: `${MATH_WGSL}
${planeIndexWgsl('outAt', o.planes)}
fn main(index : i32) {
  let M = uniforms.M;
  let N = uniforms.N;
  if (index >= M * N) { return; }
  let m = index / N;
  let n = index - m * N;
  var v = 0.0;
  for (var z = 0; z < ${splits}; z = z + 1) { v = v + P[z * M * N + index]; }
  ${epilogue(o)}
}`,
  };
}

const SUM_THREADS = 64;

export function matmulWorkgroups(M: number, N: number, software: boolean, tile: MatmulTile): [number, number] {
  const s = side(software);
  return [Math.ceil(N / (s * tile.cols)), Math.ceil(M / (s * tile.rows))];
}

/**
 * K slices for an output whose workgroups would leave half the GPU idle (x_proj: L × 80;
 * out_proj): as many as fill it, at most 8 and each at least 128 long. 1 on a CPU.
 */
export function chooseSplits(shape: MatmulShape, tile: MatmulTile, software: boolean): number {
  if (software) return 1;
  const [x, y] = matmulWorkgroups(shape.M, shape.N, software, tile);
  // Measured in the forward: out_proj at 2048 tokens (96 workgroups) runs 6.5 ms split in 3, 8.0 whole.
  if (x * y >= FULL_GPU_WORKGROUPS / 2) return 1;
  return Math.max(1, Math.min(8, Math.floor(shape.K / 128), Math.ceil(FULL_GPU_WORKGROUPS / (x * y))));
}

/** Where a split-K product keeps its partials: scratch the plan owns, shared by the dispatches that run one after another. */
export interface MatmulScratch {
  readonly cache: KernelCache;
  partials(elements: number): GPUBuffer;
}

/**
 * Y = X·Wᵀ (+ the epilogue `o` asks for): one dispatch, or two when split over K. The tile and
 * the splits are chooseTile's and chooseSplits' unless given.
 */
export function matmulDispatches(
  scratch: MatmulScratch,
  label: string,
  o: MatmulOptions,
  shape: MatmulShape,
  storage: Readonly<Record<string, BufferRange>>,
  choice: { readonly tile?: MatmulTile; readonly splits?: number } = {},
): Dispatch[] {
  const { cache } = scratch;
  const tile = choice.tile ?? chooseTile(shape, o.software);
  const splits = choice.splits ?? chooseSplits(shape, tile, o.software);
  const [x, y] = matmulWorkgroups(shape.M, shape.N, o.software, tile);
  const kSlice = Math.ceil(shape.K / splits / K_STEP) * K_STEP;
  if (splits === 1) return [cache.dispatch(label, matmulKernel(o, tile), [x, y], storage, { ...shape, kSlice })];
  const partials = { buffer: scratch.partials(splits * shape.M * shape.N) };
  const { Y: _, ...epilogueInputs } = storage;
  return [
    cache.dispatch(`${label} partials`, matmulKernel(o, tile, true), [x, y, splits], { X: storage.X, W: storage.W, Y: partials }, { ...shape, kSlice }),
    cache.dispatch(`${label} sum`, splitSumKernel(o, splits), cache.flatWorkgroups(shape.M * shape.N, SUM_THREADS), { P: partials, ...epilogueInputs, Y: storage.Y }, { M: shape.M, N: shape.N }),
  ];
}
