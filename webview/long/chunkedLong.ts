/**
 * A long run in the panel, on tfjs or the native WebGPU engine: the sample in chunks of
 * LONG_CHUNK tokens, each from the layers' carries of the chunk before (ChunkForward: tfjs takes
 * them as patch-states at token −1, src/engine/tfjs/chunkRunner.ts; the native engine into its
 * plan's carryIn), its internals reduced at once by the LongRunBuilder and let go; and a window's
 * full internals recomputed from the checkpoint before it: the tokens from the checkpoint to the
 * window keep only the carry, the window keeps what the views draw.
 */
import type { ForwardOptions, ForwardResult, InternalName } from '../../src/engine/internals';
import { carriesOf, type LayerCarry } from '../../src/engine/layers/kind';
import type { Tensor } from '../../src/engine/tensor';
import { carryEdits } from '../../src/engine/tfjs/chunkRunner';
import { tfjsForward, type TfModel } from '../../src/engine/tfjs/forward';
import type { WebGpuModel } from '../../src/engine/webgpu/model';
import type { RequestContext } from '../../src/protocol';
import { predictionRows, type LayerRecord, type WindowInternals } from '../inspection';
import type { LongRunBuilder } from './builder';
import type { LongRun } from './longRun';
import type { TokenWindow } from './window';

/** Tokens per chunk, and so between checkpoints: a window recompute runs at most this many tokens before the window. */
export const LONG_CHUNK = 2048;

/** What a chunk keeps for the summaries (the state and conv context at its last token: the carry). */
export const SUMMARY_INTERNALS: readonly InternalName[] = ['delta', 'z', 'u', 'B', 'h', 'conv_state'];

/** A forward of the panel's engine from each layer's carry (none: the sequence's start). */
export type ChunkForward = (ids: Int32Array, options: ForwardOptions, carries: readonly LayerCarry[] | undefined) => Promise<ForwardResult<Float32Array>>;

export const tfjsChunkForward = (model: TfModel): ChunkForward => (ids, options, carries) => tfjsForward(model, ids, { ...options, edits: carryEdits(carries) });
export const webgpuChunkForward = (model: WebGpuModel): ChunkForward => (ids, options, carries) => model.forward(ids, options, carries);

/** The first `T` rows of a [T + 1, …] tensor: a chunk's own rows without the look-ahead token. */
function firstRows(t: Tensor<Float32Array>, T: number): Tensor<Float32Array> {
  const row = t.data.length / t.shape[0];
  return { shape: [T, ...t.shape.slice(1)], data: t.data.subarray(0, T * row) };
}

/** The carry's states as the analyses take them: float32 [D, N] per layer. */
function statesOf(carries: readonly LayerCarry[] | undefined): Map<number, Float32Array> {
  return new Map((carries ?? []).map((c, i) => [i, Float32Array.from(c.h)]));
}

/** The whole sample through `builder`, chunk by chunk; `k`: the top-k kept at every position. */
export async function longRunInChunks(forward: ChunkForward, ids: Int32Array, builder: LongRunBuilder, k: number, ctx: RequestContext): Promise<void> {
  const L = ids.length;
  let carries: LayerCarry[] | undefined;
  for (let start = 0; start < L; start += LONG_CHUNK) {
    ctx.throwIfCancelled();
    const end = Math.min(L, start + LONG_CHUNK);
    const T = end - start;
    if (carries) builder.checkpoint(start, carries);
    // The token after the chunk rides along, so the chunk's last row has its next-token probability; its own row is dropped.
    const run = await forward(ids.subarray(start, Math.min(L, end + 1)), { statesAt: [T - 1], keep: SUMMARY_INTERNALS, predictions: k, checkCancelled: ctx.throwIfCancelled }, carries);
    const entering = statesOf(carries);
    const records: LayerRecord[] = run.layers.map((l) => {
      const { delta, z, u, B } = l.tensors;
      const tensors = { ...(delta ? { delta: firstRows(delta, T) } : {}), ...(z ? { z: firstRows(z, T) } : {}), ...(u ? { u: firstRows(u, T) } : {}), ...(B ? { B: firstRows(B, T) } : {}) };
      return { layer: l.layer, tensors, h0: entering.get(l.layer) };
    });
    await builder.addChunk(start, records, predictionRows(run.predictions!, 0, T));
    carries = carriesOf(run);
    ctx.progress({ stage: 'long run in chunks', done: end, total: L });
  }
}

/**
 * Window `w`'s internals (`options`: which layers and internals, as a short run keeps them) from
 * the checkpoint before it. At most LONG_CHUNK tokens run before the window, keeping only the carry.
 */
export async function windowFromCheckpoint(forward: ChunkForward, run: LongRun, w: TokenWindow, options: Pick<ForwardOptions, 'layers' | 'keep'>, ctx: RequestContext): Promise<WindowInternals> {
  const ids = new Int32Array(run.params.ids);
  const from = run.checkpointBefore(w[0]);
  let carries = run.carriesAt(from);
  if (from < w[0]) {
    ctx.progress({ stage: `from the checkpoint at token ${from} to the window`, done: 0, total: 2 });
    // predictions: 1 keeps the [T, V] logits off the heap; nothing else of these tokens is needed.
    const lead = await forward(ids.subarray(from, w[0]), { statesAt: [-1], keep: ['h', 'conv_state'], predictions: 1, checkCancelled: ctx.throwIfCancelled }, carries);
    carries = carriesOf(lead);
  }
  ctx.progress({ stage: 'the window’s internals', done: 1, total: 2 });
  const result = await forward(ids.subarray(w[0], w[1]), { ...options, predictions: 1, checkCancelled: ctx.throwIfCancelled }, carries);
  return { result: { layers: result.layers }, h0: statesOf(carries) };
}
