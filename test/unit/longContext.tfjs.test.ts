/**
 * Long sequences in chunks on tfjs (tfjsChunkRunner through forwardInChunks): each layer's carry
 * put in as the state and conv context entering the chunk gives the single pass's run (the plain
 * tfjsForward over the whole sequence): the logits at every position, the loss, each layer's final
 * state and conv context. The host loop (cpu, wasm) walks the tokens in the same order either way:
 * bit for bit. The prefix scan (webgl's) combines the pairs in a tree whose shape follows the chunk
 * boundaries, so its rounding differs: logits and loss within 1e-6 normalized; the states within
 * 2e-6 (mamba1-tiny, 23 tokens: the single pass's layer-1 state is itself 8.9e-7 from the float64
 * reference's, the run in chunks of 2 1.0e-6, 1.06e-6 apart; a carry lost is an error of order 1).
 */
import assert from 'node:assert/strict';
import { forwardInChunks } from '../../src/engine/chunkedForward';
import { isLanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { nextTokenLoss } from '../../src/engine/predictions';
import { tfjsChunkRunner } from '../../src/engine/tfjs/chunkRunner';
import { createTfModel, tfjsForward } from '../../src/engine/tfjs/forward';
import { normalizedError } from '../../src/engine/tensor';
import { NodeFolderStore } from '../../src/node/files';
import { fixture, openSafetensors } from './fixtures';
import { SCANS } from './tfjsScans';
import { useNodeBackend } from '../../src/node/tfjsBackends';

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  const e = normalizedError(got, want);
  assert.ok(e <= tol, `${what}: normalized error ${e.toExponential(2)} over ${tol}`);
}

describe('long sequences in chunks (tfjs)', function () {
  this.timeout(120_000);

  for (const [scan, use] of SCANS) {
    for (const name of ['mamba1-tiny', 'mamba2-tiny']) {
      // 300 tokens cross the prefix scan's own 128-token chunks; chunks of 2 are shorter than the conv's K − 1 = 3 inputs of context.
      for (const [tokens, chunkLength] of [[300, 97], [23, 2]]) {
        it(`${scan}, ${name}: ${tokens} tokens in chunks of ${chunkLength} are the single pass`, async () => {
          await use();
          const m = await loadModelFolder(new NodeFolderStore(fixture(name)), 'float32');
          assert.ok(isLanguageModel(m));
          const tfModel = createTfModel(m);
          try {
            const V = m.config.vocabSize;
            const ids = Array.from({ length: tokens }, (_, i) => (i * 37 + 11) % V);
            const whole = await tfjsForward(tfModel, ids, { statesAt: [-1], keep: ['h', 'conv_state'] });
            const chunked = await forwardInChunks(tfjsChunkRunner(tfModel), ids, V, Float32Array, { chunkLength, logitsAt: ids.map((_, t) => t) });
            const exact = !scan.startsWith('prefix');
            const same = (what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number) => (exact ? assert.deepEqual(Array.from(got), Array.from(want), what) : close(what, got, want, tol));
            same('logits', chunked.logits.data, whole.logits!.data, 1e-6);
            same('nll', chunked.nll, ids.slice(0, -1).map((_, t) => nextTokenLoss(whole.logits!, t, ids[t + 1])), 1e-6);
            chunked.final.forEach((carry, i) => {
              const { h, conv_state } = whole.layers[i].tensors;
              same(`layer ${i} state`, carry.h, h!.data, 2e-6);
              assert.deepEqual(carry.conv!.shape, conv_state!.shape.slice(1));
              same(`layer ${i} conv context`, carry.conv!.data, conv_state!.data, 2e-6);
            });
          } finally {
            tfModel.dispose();
          }
        });
      }
    }
  }

  // Issue 13 item 6: the fp32 path at 32,768 tokens within 1e-4 of transformers' float64 run (wasm: 7.6 s on this 2-core machine; the cpu backend is slower).
  it('wasm, mamba1-tiny over 32,768 tokens in 2048-token chunks matches transformers\' float64 run within 1e-4', async () => {
    await useNodeBackend('wasm');
    const golden = await openSafetensors(fixture('long', 'golden-32k.safetensors'));
    const read = async (k: string) => (await golden.readFloat(k, 'float64')).data;
    const ids = (await golden.readNative('input_ids')).data as Int32Array;
    const positions = [...((await golden.readNative('positions')).data as Int32Array)];
    const m = await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float32');
    assert.ok(isLanguageModel(m));
    const tfModel = createTfModel(m);
    try {
      const run = await forwardInChunks(tfjsChunkRunner(tfModel), ids, m.config.vocabSize, Float32Array, { chunkLength: 2048, logitsAt: positions });
      close('logits_f64', run.logits.data, await read('logits_f64'), 1e-4);
      close('nll_f64', run.nll, await read('nll_f64'), 1e-4);
      for (const [i, carry] of run.final.entries()) {
        close(`layers.${i}.h_last_f64`, carry.h, await read(`layers.${i}.h_last_f64`), 1e-4);
        // conv_state [D, K] holds the last K inputs, the newest last; the carried context is the last K − 1, as rows.
        const state = await read(`layers.${i}.conv_state_f64`);
        const [K1, D] = carry.conv!.shape;
        close(`layers.${i}.conv_state_f64`, carry.conv!.data, Float64Array.from({ length: K1 * D }, (_, j) => state[(j % D) * (K1 + 1) + 1 + Math.floor(j / D)]), 1e-4);
      }
    } finally {
      tfModel.dispose();
    }
  });
});
