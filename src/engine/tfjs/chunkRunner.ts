/**
 * One chunk of a long run (../chunkedForward.ts) on tfjs: the ordinary forward over the chunk with
 * each layer's carry put in as a patch-state at token −1 (the state and conv context entering the
 * chunk: the scans start from it, the conv reads it as the context before token 0), and its state
 * and conv context after the chunk's last token read back as the next chunk's carry.
 */
import { chunkRows, type ChunkRunner } from '../chunkedForward';
import type { LayerEdit } from '../interventions';
import { carriesOf, type LayerCarry } from '../layers/kind';
import { tfjsForward, type TfModel } from './forward';

/** The carry as the patch-state that stands for it: what a layer's conv and scan already take. */
function carryEdit(carry: LayerCarry): LayerEdit {
  return { scan: {}, patch: { token: -1, h: carry.h, conv: carry.conv?.data ?? new Float64Array(0) } };
}

/** Each layer's carry as its edit (absent for the first chunk: zero states). Exported for the panel's long run, which runs its chunks with more kept. */
export function carryEdits(carries: readonly LayerCarry[] | undefined): ReadonlyMap<number, LayerEdit> | undefined {
  return carries && new Map(carries.map((carry, i) => [i, carryEdit(carry)]));
}

export function tfjsChunkRunner(model: TfModel, checkCancelled?: () => void): ChunkRunner<Float32Array> {
  return async (chunk) => {
    const edits = carryEdits(chunk.carries);
    const run = await tfjsForward(model, chunk.ids, { statesAt: [-1], keep: ['h', 'conv_state'], ...(edits ? { edits } : {}), checkCancelled });
    return { ...chunkRows(run.logits!, chunk), carries: carriesOf(run) };
  };
}
