/**
 * Causal self-attention on WebGPU, in the order of the float64 reference (./reference.ts, the
 * oracle): q, k and v projections (+ Zamba2's adapters) → Falcon-H1's key multiplier and RoPE
 * (angles from a table computed on the host in float64) → one workgroup per (head, query token)
 * with an online softmax over the keys, a block of keys at a time, so memory is O(L) whatever the
 * length → o_proj. The [L, heads, L] pattern is written only when asked for (io.pattern).
 */
import type { AdapterSpec, AttentionOp, RopeSpec } from '../hybrid/config';
import { barrier, cooperativeThreads, unrolled as each, type BufferRange, type Dispatch, type KernelSpec } from '../../webgpu/kernel';
import { ELEMENTWISE_THREADS } from '../../webgpu/elementwise';
import { projectionDispatches, whole, type CaptureSource, type LayerContext, type LayerScratch } from '../../webgpu/layer';

/** A hybrid layer's weights on the device, by checkpoint key. */
export type GpuOpWeights = (key: string) => GPUBuffer;

/** cos then sin of t·θ^(−2j/dims) for t < L, j < dims/2, rounded once from float64. */
function ropeTable(L: number, rope: RopeSpec): Float32Array<ArrayBuffer> {
  const half = rope.dims / 2;
  const table = new Float32Array(2 * L * half);
  for (let t = 0; t < L; t++) {
    for (let j = 0; j < half; j++) {
      const angle = t / rope.theta ** ((2 * j) / rope.dims);
      table[t * half + j] = Math.cos(angle);
      table[L * half + t * half + j] = Math.sin(angle);
    }
  }
  return table;
}

/**
 * scale · x, then in each head dims j and j + dims/2 (j < dims/2) rotated by the table's angle
 * (rotate_half); dims ≥ `dims` only scaled. One invocation per element, out of place.
 */
function ropeKernel(heads: number, headDim: number, dims: number): KernelSpec {
  const half = dims / 2;
  return {
    storage: [{ name: 'X', type: 'f32' }, ...(dims ? [{ name: 'Table', type: 'f32' } as const] : []), { name: 'result', type: 'f32', write: true }],
    uniforms: [['rows', 'i32'], ['scale', 'f32']],
    workgroupSize: ELEMENTWISE_THREADS,
    entry: 'flat',
    body: `
fn main(index : i32) {
  if (index >= uniforms.rows * ${heads * headDim}) { return; }
  let i = index % ${headDim};
  var v = X[index];
  ${dims ? `if (i < ${dims}) {
    let t = index / ${heads * headDim};
    let j = i % ${half};
    let c = Table[t * ${half} + j];
    let s = Table[uniforms.rows * ${half} + t * ${half} + j];
    if (i < ${half}) { v = v * c - X[index + ${half}] * s; } else { v = v * c + X[index - ${half}] * s; }
  }` : ''}
  result[index] = uniforms.scale * v;
}`,
  };
}

/**
 * softmax(scale · q·kᵀ over keys ≤ t) · v for one (head, query token) per workgroup: each thread
 * scores one key of a block, then every thread folds the block into the running max, sum and
 * its dims of the output (flash attention's rescaling). With `pattern`, the raw scores go to
 * Pattern and are normalized at the end by the thread that wrote them.
 */
function attentionKernel(op: AttentionOp, software: boolean, pattern: boolean): KernelSpec {
  const T = cooperativeThreads(software, 64);
  const sync = barrier(T);
  const D = op.headDim;
  const R = Math.ceil(D / T);
  const dim = (r: number) => `li + ${T * r}`;
  // A thread's r-th dim exists only when it is < D; its loads are clamped to stay in bounds.
  const ownDim = (r: number) => (T * (r + 1) <= D ? 'true' : `${dim(r)} < ${D}`);
  return {
    storage: [
      { name: 'Q', type: 'f32' }, { name: 'K', type: 'f32' }, { name: 'V', type: 'f32' },
      { name: 'O', type: 'f32', write: true },
      ...(pattern ? [{ name: 'Pattern', type: 'f32', write: true } as const] : []),
    ],
    uniforms: [['L', 'i32'], ['scale', 'f32']],
    workgroupSize: T,
    entry: 'workgroup',
    body: `
const D = ${D};
const HEADS = ${op.heads};
const KV = ${op.kvHeads};
const T = ${T};
var<workgroup> qs : array<f32, D>;
var<workgroup> scores : array<f32, T>;
fn main(group : vec3<u32>, local : u32) {
  let h = i32(group.x);
  let t = i32(group.y);
  let li = i32(local);
  let g = h / ${op.heads / op.kvHeads};
  let qAt = (t * HEADS + h) * D;
  let rowAt = (t * HEADS + h) * uniforms.L;
  for (var i = li; i < D; i = i + T) { qs[i] = Q[qAt + i]; }
  ${sync}
  var m = -3.0e38;
  var l = 0.0;
  ${each(R, (r) => `var acc${r} = 0.0;`)}
  for (var s0 = 0; s0 <= t; s0 = s0 + T) {
    let s = s0 + li;
    var score = -3.0e38;
    if (s <= t) {
      let kAt = (s * KV + g) * D;
      var dot = 0.0;
      for (var i = 0; i < D; i = i + 1) { dot = dot + qs[i] * K[kAt + i]; }
      score = dot * uniforms.scale;
      ${pattern ? 'Pattern[rowAt + s] = score;' : ''}
    }
    scores[li] = score;
    ${sync}
    let n = min(T, t - s0 + 1);
    var cm = m;
    for (var j = 0; j < n; j = j + 1) { cm = max(cm, scores[j]); }
    let corr = exp(max(m - cm, -80.0));
    l = l * corr;
    ${each(R, (r) => `acc${r} = acc${r} * corr;`)}
    for (var j = 0; j < n; j = j + 1) {
      let p = exp(max(scores[j] - cm, -80.0));
      l = l + p;
      let vAt = ((s0 + j) * KV + g) * D;
      ${each(R, (r) => `acc${r} = acc${r} + p * V[vAt + min(${dim(r)}, D - 1)];`)}
    }
    m = cm;
    ${sync}
  }
  ${each(R, (r) => `if (${ownDim(r)}) { O[qAt + ${dim(r)}] = acc${r} / l; }`)}
  ${pattern ? 'for (var s = li; s <= t; s = s + T) { Pattern[rowAt + s] = exp(max(Pattern[rowAt + s] - m, -80.0)) / l; }' : ''}
}`,
  };
}

/**
 * x · Wᵀ into `out` (in `planes` when given), plus Zamba2's low-rank adapter x · A₀ᵀ · A₁ᵀ when
 * the op has one (`<adapterList><index>.{0,1}.weight`), added by the projection's residual epilogue.
 */
export function adaptedProjection(ctx: LayerContext, scratch: LayerScratch, label: string, w: GpuOpWeights, x: GPUBuffer, inDim: number, key: string, adapterList: string, adapter: AdapterSpec | undefined, N: number, out: GPUBuffer, planes?: readonly number[]): Dispatch[] {
  const { L: M } = ctx;
  if (!adapter) return projectionDispatches(ctx, label, { x, weight: w(key), M, N, K: inDim, out, planes });
  const at = `${adapterList}${adapter.index}.`;
  const low = scratch(`${label} adapter in`, M * adapter.rank);
  const lifted = scratch(`${label} adapter out`, M * N);
  return [
    ...projectionDispatches(ctx, `${label} adapter A₀`, { x, weight: w(`${at}0.weight`), M, N: adapter.rank, K: inDim, out: low }),
    ...projectionDispatches(ctx, `${label} adapter A₁`, { x: low, weight: w(`${at}1.weight`), M, N, K: adapter.rank, out: lifted }),
    ...projectionDispatches(ctx, label, { x, weight: w(key), M, N, K: inDim, out, planes, residual: lifted }),
  ];
}

export interface GpuAttentionStep {
  readonly dispatches: Dispatch[];
  /** o_proj's output [L, H]. */
  readonly out: GPUBuffer;
  readonly pattern?: CaptureSource;
}

export function attentionGpu(op: AttentionOp, w: GpuOpWeights, x: GPUBuffer, H: number, label: string, keepPattern: boolean, ctx: LayerContext, scratch: LayerScratch): GpuAttentionStep {
  const { cache, L, software } = ctx;
  const d = op.headDim, q = op.heads * d, kv = op.kvHeads * d;
  const raw = { q: scratch(`${label} q`, L * q), k: scratch(`${label} k`, L * kv), v: scratch(`${label} v`, L * kv) };
  const dispatches: Dispatch[] = [
    ...adaptedProjection(ctx, scratch, `${label} q_proj`, w, x, op.inDim, `${op.key}q_proj.weight`, `${op.key}linear_q_adapter_list.`, op.adapter, q, raw.q),
    ...adaptedProjection(ctx, scratch, `${label} k_proj`, w, x, op.inDim, `${op.key}k_proj.weight`, `${op.key}linear_k_adapter_list.`, op.adapter, kv, raw.k),
    ...adaptedProjection(ctx, scratch, `${label} v_proj`, w, x, op.inDim, `${op.key}v_proj.weight`, `${op.key}linear_v_adapter_list.`, op.adapter, kv, raw.v),
  ];
  let [qs, ks] = [raw.q, raw.k];
  if (op.rope || op.keyScale !== 1) {
    const dims = op.rope?.dims ?? 0;
    const table: Record<string, BufferRange> = op.rope ? { Table: { buffer: ctx.shared(ropeTable, () => ctx.constant('RoPE cos|sin', ropeTable(L, op.rope!)), `${op.rope.dims}·${op.rope.theta}`) } } : {};
    const rotate = (name: string, X: GPUBuffer, heads: number, scale: number, width: number) => {
      const result = scratch(`${label} ${name} rotated`, L * width);
      dispatches.push(cache.dispatch(`${label} ${name} RoPE`, ropeKernel(heads, d, dims), cache.flatWorkgroups(L * width, ELEMENTWISE_THREADS), { X: { buffer: X }, ...table, result: { buffer: result } }, { rows: L, scale }));
      return result;
    };
    // The query rotates only with RoPE; the key multiplier applies with or without it.
    if (op.rope) qs = rotate('q', raw.q, op.heads, 1, q);
    ks = rotate('k', raw.k, op.kvHeads, op.keyScale, kv);
  }
  const o = scratch(`${label} attention`, L * q);
  // Its own buffer, never another step's scratch: the weights above the diagonal are never written and stay 0.
  const pattern = keepPattern ? ctx.shared(attentionKernel, () => ctx.allocate('attention pattern', L * op.heads * L), `${op.heads}`) : undefined;
  dispatches.push(cache.dispatch(`${label} attention`, attentionKernel(op, software, !!pattern), [op.heads, L],
    { Q: { buffer: qs }, K: { buffer: ks }, V: { buffer: raw.v }, O: { buffer: o }, ...(pattern ? { Pattern: { buffer: pattern } } : {}) }, { L, scale: op.scale }));
  const out = scratch(`${label} o_proj`, L * H);
  dispatches.push(...projectionDispatches(ctx, `${label} o_proj`, { x: o, weight: w(`${op.key}o_proj.weight`), M: L, N: H, K: q, out }));
  return { dispatches, out, ...(pattern ? { pattern: { range: whole(pattern, L * op.heads * L), shape: [L, op.heads, L] } } : {}) };
}
