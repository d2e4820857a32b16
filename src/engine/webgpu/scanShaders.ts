/**
 * WGSL for the selective scan, generated per state size N so the N states of a channel live in
 * N scalar registers (h0 … h{N−1}, unrolled): no private array that a driver might spill to
 * memory, and SwiftShader (which does not unroll loops) gets straight-line code.
 *
 * One invocation owns one channel over one chunk of tokens; channels are the fastest index, so
 * neighbouring invocations read neighbouring u/Δ/z and write neighbouring y (coalesced), while
 * B_t and C_t are the same address across a wave (one broadcast load).
 *
 * Mamba-1 and Mamba-2 share the code: a channel d belongs to head k = d / headDim and group
 * k / headsPerGroup; Mamba-1 is headDim 1, one group, and an A per (channel, state) instead of
 * one per head (then exp(Δ·A) is N exponentials per token instead of one).
 *
 * The small per-channel inputs travel in one float array, Params = [A | D | slot per token]
 * (slot: index into the requested states, or −1), because a browser's WebGPU device grants
 * 8 storage buffers per shader and the output pass would otherwise need 10. A scan with
 * interventions (../interventions.ts, ScanEdit) reads more words after the slots (EDIT_WORDS):
 * per token a write multiplier w_t (0 drops Δ·u·B: ablate-write) and a keep multiplier r_t
 * (0 empties the state after the update: zero-state), then the knocked-out token and the first
 * position that loses its term: h_t = r_t·(exp(Δ·A)·h_{t−1} + w_t·Δ·u·B_t).
 *
 * Three programs:
 *  - output: scan a chunk from a start state (the first chunk from zero or the initial state in
 *    Params, a later one from the carried state H0), write y = C·h + D·u,
 *    optionally y·silu(z) and the states at requested tokens. With one chunk it is the fused
 *    single-pass scan.
 *  - chunkEnd: scan a chunk from zero and keep only its end state and ΣΔ (the chunk's decay is
 *    exp(A·ΣΔ)), for every chunk but the last.
 *  - carry: one invocation per (channel, state) walks the chunks in order:
 *    H_c = exp(A·ΣΔ_{c−1})·H_{c−1} + S_{c−1}, the start state of chunk c (H_0: zero or the
 *    initial state).
 *
 * patch-state (ScanKernelOptions.patched, one chunk): after the initial state Params holds the
 * patched token and the state that replaces the state after its update, so y at that token reads
 * it (the reference's selectiveScan); a knockout's term there is emptied with it.
 */
import { unrolled } from './kernel';
import { SAFE_MATH_WGSL } from './math';

export interface ScanKernelOptions {
  readonly N: number;
  /** Mamba-1: A is [channels, N]. Mamba-2: A is [heads]. */
  readonly aPerState: boolean;
  /**
   * Bm and Cm are bound as vec4 arrays (N a multiple of 4): a quarter of the load instructions,
   * and of the bounds checks WebGPU adds to each (SwiftShader pays for every one).
   */
  readonly vec4: boolean;
  /** Params holds the edit words after the slots (editWords): the state update applies w_t and r_t. */
  readonly edited?: boolean;
  /**
   * Params holds, after the slots and edit words, the state entering the sequence (the state
   * "after token −1", [channels, N] as the states are written): the first chunk starts from it,
   * and the carry walks from it. Without it the sequence starts from zero.
   */
  readonly initial?: boolean;
  /**
   * patch-state (output program, one chunk): Params holds, after the initial state (if any), the
   * patched token and the state [channels, N] that replaces the state after its update (patch.ts).
   */
  readonly patched?: boolean;
}

/** WGSL: where the initial state starts in Params (after [A | D | slots] and the edit words). */
function initialAt(o: Pick<ScanKernelOptions, 'edited'>): string {
  return `uniforms.slotOffset + uniforms.seqLen${o.edited ? ' * 3 + 2' : ''}`;
}

/** WGSL: where the patch's words (token, then the state) start in Params: after the initial state. */
function patchAt(o: Pick<ScanKernelOptions, 'edited' | 'initial' | 'N'>): string {
  return `${initialAt(o)}${o.initial ? ` + uniforms.channels * ${o.N}` : ''}`;
}

/**
 * The edit words of a scan of L tokens, after [A | D | slots]: w [L], r [L], then the knockout's
 * source token and first position (−1: none).
 */
export function editWords(L: number, edit: { noWrite?: ReadonlySet<number>; reset?: ReadonlySet<number>; knockout?: { source: number; from: number } }): Float32Array<ArrayBuffer> {
  const words = new Float32Array(2 * L + 2);
  for (let t = 0; t < L; t++) {
    words[t] = edit.noWrite?.has(t) ? 0 : 1;
    words[L + t] = edit.reset?.has(t) ? 0 : 1;
  }
  words[2 * L] = edit.knockout?.source ?? -1;
  words[2 * L + 1] = edit.knockout?.from ?? -1;
  return words;
}

export interface OutputKernelOptions extends ScanKernelOptions {
  /** Also write y·silu(z) after y. */
  readonly gate: boolean;
  /** Also write h after the tokens with a slot ≥ 0, after y (and the gated y). */
  readonly states: boolean;
  /** Chunks after the first start from H0 (the carry program's output). */
  readonly carried: boolean;
  /**
   * Knockout (edited, one chunk): a second state g carries the knocked-out token's own term,
   * g_t = r_t·(exp(Δ·A)·g_{t−1} + [t = s]·Δ·u·B_t), and C_t·g_t leaves y_t from the first position on.
   */
  readonly knockout?: boolean;
}

/** Uniforms every scan program declares (values from scanUniforms). */
export const SCAN_UNIFORM_NAMES = ['seqLen', 'channels', 'heads', 'headDim', 'groupStride', 'headsPerGroup', 'chunkLen', 'numChunks', 'skipOffset', 'slotOffset'] as const;

/** One scan's geometry: Mamba-1 is heads = channels, headDim 1, one group, A per state. */
export interface ScanGeometry {
  readonly L: number;
  readonly channels: number;
  readonly N: number;
  readonly heads: number;
  readonly headDim: number;
  readonly groups: number;
  readonly aPerState: boolean;
}

/** The uniform values, in SCAN_UNIFORM_NAMES order, of a program over `numChunks` chunks of `chunkLen` tokens. */
export function scanUniforms(g: ScanGeometry, chunkLen: number, numChunks: number): number[] {
  const aSize = g.aPerState ? g.channels * g.N : g.heads;
  return [g.L, g.channels, g.heads, g.headDim, g.groups * g.N, g.heads / g.groups, chunkLen, numChunks, aSize, aSize + g.heads];
}

const each = (N: number, f: (n: number) => string, sep = '\n    '): string => unrolled(N, f, sep);

/** Declares row t of B or C (`bc` is its first element) and returns each state's element. */
function rowOf(matrix: 'Bm' | 'Cm', { N, vec4 }: ScanKernelOptions): { load: string; at: (n: number) => string } {
  const v = matrix === 'Bm' ? 'bv' : 'cv';
  if (!vec4) return { load: '', at: (n) => `${matrix}[bc + ${n}]` };
  return {
    load: each(N / 4, (q) => `let ${v}${q} = ${matrix}[bc / 4 + ${q}];`),
    at: (n) => `${v}${n >> 2}.${'xyzw'[n & 3]}`,
  };
}

function channelPrelude({ N, aPerState }: ScanKernelOptions): string {
  return `
  let channels = uniforms.channels;
  let c = index / channels;
  if (c >= uniforms.numChunks) { return; }
  let d = index - c * channels;
  let k = d / uniforms.headDim;
  let bOff = (k / uniforms.headsPerGroup) * ${N};
  ${aPerState ? each(N, (n) => `let a${n} = finiteA(Params[d * ${N} + ${n}]);`, '\n  ') : 'let a = finiteA(Params[k]);'}
  ${each(N, (n) => `var h${n} = 0.0;`, '\n  ')}
  let t0 = c * uniforms.chunkLen;
  let t1 = min(t0 + uniforms.chunkLen, uniforms.seqLen);`;
}

/** Loads token t's inputs and advances the N states: h = exp(Δ·A)·h + Δ·u·B_t (with edits: r_t·(exp(Δ·A)·h + w_t·Δ·u·B_t)). */
function stateUpdate(o: ScanKernelOptions, knockout = false): string {
  const { N, aPerState } = o;
  const b = rowOf('Bm', o);
  const decay = (n: number) => (aPerState ? `e${n}` : 'e');
  const edits = o.edited ? `
    let editAt = uniforms.slotOffset + uniforms.seqLen + t;
    let w = Params[editAt];
    let keep = Params[editAt + uniforms.seqLen];` : '';
  const update = (n: number) => (o.edited ? `h${n} = keep * (${decay(n)} * h${n} + w * dx * ${b.at(n)});` : `h${n} = ${decay(n)} * h${n} + dx * ${b.at(n)};`);
  return `
    let dt = Delta[t * uniforms.heads + k];
    let x = U[t * channels + d];
    let dx = dt * x;
    let bc = t * uniforms.groupStride + bOff;
    ${aPerState ? each(N, (n) => `let e${n} = decayOf(dt * a${n});`) : 'let e = decayOf(dt * a);'}${edits}
    ${b.load}
    ${each(N, update)}${knockout ? `
    let own = select(0.0, w, t == knockSource);
    ${each(N, (n) => `g${n} = keep * (${decay(n)} * g${n} + own * dx * ${b.at(n)});`)}` : ''}`;
}

export function outputKernel(o: OutputKernelOptions): string {
  const { N } = o;
  const c = rowOf('Cm', o);
  const statesBase = `${o.gate ? 2 : 1} * uniforms.seqLen * channels`;
  return `${SAFE_MATH_WGSL}
fn main(index : i32) {
  ${channelPrelude(o)}
  ${o.initial ? `if (c == 0) {
    let start = ${initialAt(o)} + d * ${N};
    ${each(N, (n) => `h${n} = Params[start + ${n}];`)}
  }` : ''}
  ${o.carried ? `if (c > 0) {
    let start = (c - 1) * ${N} * channels + d;
    ${each(N, (n) => `h${n} = H0[start + ${n} * channels];`)}
  }` : ''}
  let skip = Params[uniforms.skipOffset + k];
  ${o.knockout ? `let knockAt = uniforms.slotOffset + 3 * uniforms.seqLen;
  let knockSource = i32(Params[knockAt]);
  let knockFrom = i32(Params[knockAt + 1]);
  ${each(N, (n) => `var g${n} = 0.0;`, '\n  ')}` : ''}
  ${o.patched ? `let patchToken = i32(Params[${patchAt(o)}]);
  let patchStart = ${patchAt(o)} + 1 + d * ${N};` : ''}
  for (var t = t0; t < t1; t = t + 1) {
    ${stateUpdate(o, o.knockout)}
    ${o.patched ? `if (t == patchToken) {
      ${each(N, (n) => `h${n} = Params[patchStart + ${n}];`, '\n      ')}${o.knockout ? `
      ${each(N, (n) => `g${n} = 0.0;`, '\n      ')}` : ''}
    }` : ''}
    ${c.load}
    var acc = 0.0;
    ${o.knockout
      ? `let cut = select(0.0, 1.0, t >= knockFrom);
    ${each(N, (n) => `acc = acc + (h${n} - cut * g${n}) * ${c.at(n)};`)}`
      : each(N, (n) => `acc = acc + h${n} * ${c.at(n)};`)}
    let y = acc + skip * x;
    let at = t * channels + d;
    result[at] = y;
    ${o.gate ? 'result[uniforms.seqLen * channels + at] = y * siluOf(Z[at]);' : ''}
    ${o.states ? `let slot = i32(Params[uniforms.slotOffset + t]);
    if (slot >= 0) {
      let hs = ${statesBase} + (slot * channels + d) * ${N};
      ${each(N, (n) => `result[hs + ${n}] = h${n};`, '\n      ')}
    }` : ''}
  }
}`;
}

/** Output [(c·(N+1) + n)·channels + d]: end states S, then ΣΔ at n = N. */
export function chunkEndKernel(o: ScanKernelOptions): string {
  const { N } = o;
  return `${SAFE_MATH_WGSL}
fn main(index : i32) {
  ${channelPrelude(o)}
  var sumDt = 0.0;
  for (var t = t0; t < t1; t = t + 1) {
    ${stateUpdate(o)}
    sumDt = sumDt + dt;
  }
  let out = c * ${N + 1} * channels + d;
  ${each(N, (n) => `result[out + ${n} * channels] = h${n};`, '\n  ')}
  result[out + ${N} * channels] = sumDt;
}`;
}

/**
 * Input S from chunkEndKernel; output [(c·N + n)·channels + d]: the start state of chunk c + 1.
 * Chunk c + 1's S is loaded before chunk c's state is combined: the walk is sequential, so
 * without the prefetch every step would wait a full memory latency.
 */
export function carryKernel(o: Omit<ScanKernelOptions, 'vec4'>): string {
  const { N, aPerState } = o;
  return `${SAFE_MATH_WGSL}
fn main(index : i32) {
  let channels = uniforms.channels;
  let n = index / channels;
  if (n >= ${N}) { return; }
  let d = index - n * channels;
  let a = finiteA(Params[${aPerState ? `d * ${N} + n` : 'd / uniforms.headDim'}]);
  let stride = ${N + 1} * channels;
  var at = d;
  var s = S[at + n * channels];
  var sumDt = S[at + ${N} * channels];
  var h = ${o.initial ? `Params[${initialAt(o)} + d * ${N} + n]` : '0.0'};
  for (var c = 0; c < uniforms.numChunks; c = c + 1) {
    let sNow = s;
    let sumDtNow = sumDt;
    if (c + 1 < uniforms.numChunks) {
      at = at + stride;
      s = S[at + n * channels];
      sumDt = S[at + ${N} * channels];
    }
    h = decayOf(a * sumDtNow) * h + sNow;
    result[(c * ${N} + n) * channels + d] = h;
  }
}`;
}
