/**
 * One chunk of a long run (../chunkedForward.ts) on tfjs: the ordinary forward over the chunk with
 * each layer's carry put in as a patch-state at token −1 (the state and conv context entering the
 * chunk: the scans start from it, the conv reads it as the context before token 0), and its state
 * and conv context after the chunk's last token read back as the next chunk's carry.
 */
import { chunkRows, type ChunkRunner } from '../chunkedForward';
import { InputError } from '../errors';
import type { LayerEdit } from '../interventions';
import type { LayerCarry } from '../layers/kind';
import { tfjsForward, type TfModel } from './forward';

/** The carry as the patch-state that stands for it: what a layer's conv and scan already take. */
function carryEdit(carry: LayerCarry): LayerEdit {
  return { scan: {}, patch: { token: -1, h: carry.h, conv: carry.conv?.data ?? new Float64Array(0) } };
}

export function tfjsChunkRunner(model: TfModel, checkCancelled?: () => void): ChunkRunner<Float32Array> {
  return async (chunk) => {
    const edits = chunk.carries && new Map(chunk.carries.map((carry, i) => [i, carryEdit(carry)]));
    const run = await tfjsForward(model, chunk.ids, { statesAt: [-1], keep: ['h', 'conv_state'], ...(edits ? { edits } : {}), checkCancelled });
    const carries = run.layers.map(({ layer, tensors: { h, conv_state } }): LayerCarry => {
      if (!h) throw new InputError(`layer ${layer}`, 'has no scan state to carry from one chunk to the next: a long run needs every layer to be a Mamba layer');
      return { h: Float64Array.from(h.data), ...(conv_state ? { conv: { shape: conv_state.shape.slice(1), data: Float64Array.from(conv_state.data) } } : {}) };
    });
    return { ...chunkRows(run.logits!, chunk), carries };
  };
}
