/**
 * The selective scan in the native forward: the WGSL of ./scanShaders.ts bound to plan buffers.
 * The float64 reference scan (../reference/scan.ts) is its oracle.
 *
 * Fused: one pass, one invocation per channel — D invocations. Enough on a CPU (SwiftShader), far
 * too few to fill a GPU at small D (the scan is then latency-bound: one token after another).
 * Chunked: the tokens are cut into chunks scanned side by side (chunks × D invocations), in three
 * dispatches: chunk end states from zero, the carry of start states across chunks, and the
 * output pass from the carried states. It does the state update twice, for many times the
 * parallelism.
 */
import { carryKernel, chunkEndKernel, outputKernel, SCAN_UNIFORM_NAMES, scanUniforms, type ScanGeometry, type ScanKernelOptions } from './scanShaders';
import type { BufferRange, Dispatch, KernelCache, KernelSpec, StorageBinding } from './kernel';

/** The scan generator's programs are flat, in 64-thread workgroups. */
const SCAN_THREADS = 64;

/**
 * Invocations that keep a big GPU busy: an H100/H200 runs about 2048 per SM on 132 SMs; half of
 * that already hides the memory latency of this loop.
 */
const GPU_PARALLELISM = 1 << 17;
/** Shorter chunks make the sequential carry (one step per chunk) dominate. */
const MIN_CHUNK = 16;

/**
 * Tokens per chunk: the whole sequence (fused) on a CPU implementation or when D channels
 * already fill the device, else as many chunks as it takes to reach GPU_PARALLELISM.
 */
export function defaultChunkLength(L: number, channels: number, software: boolean): number {
  if (software) return L;
  const chunks = Math.ceil(GPU_PARALLELISM / channels);
  return chunks <= 2 ? L : Math.max(MIN_CHUNK, Math.ceil(L / chunks));
}

export interface ScanChunking {
  readonly chunkLen: number;
  readonly chunks: number;
}

export function scanChunking(L: number, chunkLen: number): ScanChunking {
  const len = Math.max(1, Math.min(L, chunkLen));
  return { chunkLen: len, chunks: Math.ceil(L / len) };
}

/** Elements of the chunk-end and carry scratch buffers (zero with one chunk). */
export function scanScratch(g: ScanGeometry, c: ScanChunking): { ends: number; carried: number } {
  const between = c.chunks - 1;
  return { ends: between * (g.N + 1) * g.channels, carried: between * g.N * g.channels };
}

export interface ScanBindings {
  readonly u: BufferRange;
  readonly delta: BufferRange;
  /** [A | D] as the generator expects it (A = −exp(A_log), flattened). */
  readonly params: BufferRange;
  readonly B: BufferRange;
  readonly C: BufferRange;
  /** With z, the output is [y | y·silu(z)], 2·L·channels. */
  readonly z?: BufferRange;
  /**
   * Write the state after each token whose slot (params, after A and D: one per token, −1 for
   * none) is ≥ 0, after y (and the gated y): [slots, channels, N].
   */
  readonly states?: boolean;
  /**
   * Params carries the edit words after the slots (scanShaders.ts: editWords); a knockout
   * needs one chunk (its term is carried from the source token in registers, not across chunks).
   */
  readonly edit?: { readonly knockout: boolean };
  /** Params holds the initial state after the slots and edit words (ScanKernelOptions.initial). */
  readonly initial?: boolean;
  /** Params holds a patch-state's token and state after the initial state (ScanKernelOptions.patched): one chunk. */
  readonly patched?: boolean;
  readonly out: BufferRange;
  readonly ends?: BufferRange;
  readonly carried?: BufferRange;
}

function scanSpec(body: string, storage: StorageBinding[]): KernelSpec {
  return { storage, uniforms: SCAN_UNIFORM_NAMES.map((n) => [n, 'i32'] as const), workgroupSize: SCAN_THREADS, entry: 'flat', body };
}

export function scanDispatches(cache: KernelCache, label: string, g: ScanGeometry, c: ScanChunking, b: ScanBindings): Dispatch[] {
  const vec4 = g.N % 4 === 0;
  const o: ScanKernelOptions = { N: g.N, aPerState: g.aPerState, vec4, edited: !!b.edit, initial: b.initial ?? false, patched: b.patched ?? false };
  const bc = vec4 ? 'vec4<f32>' : 'f32';
  const uniforms = (numChunks: number) => {
    const values = scanUniforms(g, c.chunkLen, numChunks);
    return Object.fromEntries(SCAN_UNIFORM_NAMES.map((n, i) => [n, values[i]]));
  };
  const dispatches: Dispatch[] = [];
  const carried = c.chunks > 1;
  if (carried && b.edit?.knockout) throw new Error(`${label}: a knockout scans as one chunk, not ${c.chunks}`);
  if (carried && b.patched) throw new Error(`${label}: a patch-state scans as one chunk, not ${c.chunks}`);
  if (carried) {
    if (!b.ends || !b.carried) throw new Error(`${label}: ${c.chunks} chunks need the scan's scratch buffers`);
    dispatches.push(
      cache.dispatch(
        `${label} chunk ends`,
        scanSpec(chunkEndKernel(o), [{ name: 'U', type: 'f32' }, { name: 'Delta', type: 'f32' }, { name: 'Params', type: 'f32' }, { name: 'Bm', type: bc }, { name: 'result', type: 'f32', write: true }]),
        cache.flatWorkgroups((c.chunks - 1) * g.channels, SCAN_THREADS),
        { U: b.u, Delta: b.delta, Params: b.params, Bm: b.B, result: b.ends },
        uniforms(c.chunks - 1),
      ),
      cache.dispatch(
        `${label} carry`,
        scanSpec(carryKernel(o), [{ name: 'S', type: 'f32' }, { name: 'Params', type: 'f32' }, { name: 'result', type: 'f32', write: true }]),
        cache.flatWorkgroups(g.N * g.channels, SCAN_THREADS),
        { S: b.ends, Params: b.params, result: b.carried },
        uniforms(c.chunks - 1),
      ),
    );
  }
  const gate = b.z !== undefined;
  const storage: StorageBinding[] = [
    { name: 'U', type: 'f32' }, { name: 'Delta', type: 'f32' }, { name: 'Params', type: 'f32' }, { name: 'Bm', type: bc }, { name: 'Cm', type: bc },
    ...(gate ? [{ name: 'Z', type: 'f32' } as const] : []),
    ...(carried ? [{ name: 'H0', type: 'f32' } as const] : []),
    { name: 'result', type: 'f32', write: true },
  ];
  dispatches.push(
    cache.dispatch(
      `${label} output`,
      scanSpec(outputKernel({ ...o, gate, states: b.states ?? false, carried, knockout: b.edit?.knockout ?? false }), storage),
      cache.flatWorkgroups(c.chunks * g.channels, SCAN_THREADS),
      { U: b.u, Delta: b.delta, Params: b.params, Bm: b.B, Cm: b.C, ...(b.z ? { Z: b.z } : {}), ...(b.carried ? { H0: b.carried } : {}), result: b.out },
      uniforms(c.chunks),
    ),
  );
  return dispatches;
}
