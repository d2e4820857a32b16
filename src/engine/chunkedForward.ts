/**
 * A long sequence run in chunks on any engine (issue 13): this driver walks the chunks, and an
 * engine's ChunkRunner runs one chunk from each layer's carry (LayerCarry: its scan state and conv
 * context after the chunk before) and hands back the rows the run keeps and the new carries. So
 * what the forward holds is one chunk's activations whatever the length, and what the run keeps is
 * O(L): the next-token loss at every position, the logits at the chosen positions, and the final
 * carries. The float64 reference (referenceForwardChunked), tfjs (tfjsChunkRunner) and the native
 * WebGPU engine each give a runner; the walk, the positions and the rows' bookkeeping are here once.
 */
import { resolvePositions } from './internals';
import type { LayerCarry } from './layers/kind';
import { nextTokenLoss } from './predictions';
import type { FloatArray, FloatCtor, Tensor } from './tensor';

/** One chunk as the driver hands it to a runner. */
export interface ChunkInput {
  /** The chunk's token ids. */
  readonly ids: ArrayLike<number>;
  /** Position of the chunk's first token in the sequence. */
  readonly start: number;
  /** The token after the chunk's last one (that row's next token); absent at the end of the sequence. */
  readonly next?: number;
  /** Rows of the chunk (0-based within it, ascending) whose logits the run keeps. */
  readonly keep: Int32Array;
  /** Each layer's carry from the chunk before; absent for the first chunk (zero states). */
  readonly carries?: readonly LayerCarry[];
}

/** What a runner gives back for a chunk. */
export interface ChunkOutput<F extends FloatArray> {
  /** −log p(next token) at each of the chunk's rows that has a next token (T rows, or T − 1 at the end). */
  readonly nll: ArrayLike<number>;
  /** [keep.length, V], row-major: the logits at the kept rows. */
  readonly logits: F;
  /** Each layer's carry after the chunk's last token. */
  readonly carries: readonly LayerCarry[];
}

/** An engine's forward over one chunk from the carries. */
export type ChunkRunner<F extends FloatArray> = (chunk: ChunkInput) => ChunkOutput<F> | Promise<ChunkOutput<F>>;

export interface ChunkedRunOptions {
  /** Tokens per chunk (default 2048): the forward holds one chunk's activations, whatever the length. */
  readonly chunkLength?: number;
  /** Positions whose logits are kept (default: the last; negative counts from the end). */
  readonly logitsAt?: readonly number[];
  /** Polled between chunks; throw CancelledError to stop. (A runner may poll it between layers too.) */
  readonly checkCancelled?: () => void;
  /** Called after each chunk with the tokens done so far. */
  readonly onProgress?: (tokens: number) => void;
}

export interface ChunkedRun<F extends FloatArray = FloatArray> {
  /** Sorted, distinct. */
  readonly positions: Int32Array;
  /** [P, V] at `positions`. */
  readonly logits: Tensor<F>;
  /** −log p(token t + 1) after token t, for t < L − 1. */
  readonly nll: Float64Array;
  /** Each layer's state and conv context after the last token. */
  readonly final: readonly LayerCarry[];
}

/**
 * Runs `runner` over `ids` chunk after chunk, each from the carries the one before left. `floats`:
 * the logits' precision (the engine's). An empty sequence is refused: it has no state to carry.
 */
export async function forwardInChunks<F extends FloatArray>(runner: ChunkRunner<F>, ids: ArrayLike<number>, vocabSize: number, floats: FloatCtor, options: ChunkedRunOptions = {}): Promise<ChunkedRun<F>> {
  const L = ids.length;
  if (L === 0) throw new RangeError('a chunked run needs at least one token');
  const chunk = options.chunkLength ?? 2048;
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`chunk length ${chunk} is not a positive integer`);
  const positions = resolvePositions(options.logitsAt ?? [-1], L);
  const V = vocabSize;
  // The constructor and F are chosen together by the caller (Float64Array for the reference, Float32Array for the fp32 engines).
  const logits = new floats(positions.length * V) as F;
  const nll = new Float64Array(L - 1);
  let carries: readonly LayerCarry[] | undefined;
  let p = 0;
  for (let start = 0; start < L; start += chunk) {
    options.checkCancelled?.();
    const end = Math.min(L, start + chunk);
    const first = p;
    while (p < positions.length && positions[p] < end) p++;
    const keep = positions.subarray(first, p).map((t) => t - start);
    const out = await runner({ ids: Array.prototype.slice.call(ids, start, end), start, next: end < L ? ids[end] : undefined, keep, carries });
    nll.set(out.nll, start);
    logits.set(out.logits, first * V);
    carries = out.carries;
    options.onProgress?.(end);
  }
  return { positions, logits: { shape: [positions.length, V], data: logits }, nll, final: carries! };
}

/**
 * A chunk's rows from its whole [T, V] logits, for an engine that has them on the host (the float64
 * reference, tfjs): the next-token loss at each row that has a next token, and the kept rows.
 */
export function chunkRows<F extends FloatArray>(rows: Tensor<F>, chunk: ChunkInput): Pick<ChunkOutput<F>, 'nll' | 'logits'> {
  const T = chunk.ids.length;
  const V = rows.shape[1];
  const nll = new Float64Array(chunk.next === undefined ? T - 1 : T);
  for (let r = 0; r < nll.length; r++) nll[r] = nextTokenLoss(rows, r, r + 1 < T ? chunk.ids[r + 1] : chunk.next!);
  // The same typed array as the rows: F.
  const logits = new (rows.data.constructor as FloatCtor)(chunk.keep.length * V) as F;
  chunk.keep.forEach((r, k) => logits.set(rows.data.subarray(r * V, (r + 1) * V), k * V));
  return { nll, logits };
}
