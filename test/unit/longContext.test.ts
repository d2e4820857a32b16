/**
 * Long sequences in chunks (referenceForwardChunked): each layer's scan state and conv context
 * carried from chunk to chunk give the single pass's run bit for bit, and transformers' float64
 * run of mamba1-tiny over 32,768 tokens (test/fixtures/long/golden-32k.safetensors, copied from
 * the reference fixtures) is matched: the logits at every 512th position, the next-token loss at
 * every position, and each layer's final state and conv state.
 */
import assert from 'node:assert/strict';
import { loadModelFolder } from '../../src/engine/model/load';
import { isLanguageModel, type LanguageModel } from '../../src/engine/model/graph';
import { nextTokenLoss } from '../../src/engine/predictions';
import { referenceForward, referenceForwardChunked } from '../../src/engine/reference/forward';
import { normalizedError } from '../../src/engine/tensor';
import { NodeFolderStore } from '../../src/node/files';
import { fixture, openSafetensors } from './fixtures';

async function model(name: string): Promise<LanguageModel<'float64'>> {
  const m = await loadModelFolder(new NodeFolderStore(fixture(name)), 'float64');
  assert.ok(isLanguageModel(m));
  return m;
}

describe('long sequences in chunks (float64 reference)', function () {
  this.timeout(300_000);

  for (const name of ['mamba1-tiny', 'mamba2-tiny']) {
    it(`${name}: 23 tokens in chunks of 5 are the single pass bit for bit (logits, loss, final state and conv context)`, async () => {
      const m = await model(name);
      const ids = Array.from({ length: 23 }, (_, i) => (i * 37 + 11) % m.config.vocabSize);
      const all = ids.map((_, t) => t);
      const whole = referenceForward(m, ids, { statesAt: [-1] });
      const chunked = await referenceForwardChunked(m, ids, { chunkLength: 5, logitsAt: all });
      const onePass = await referenceForwardChunked(m, ids, { chunkLength: 23, logitsAt: [-1] });
      assert.deepEqual(chunked.logits.data, whole.logits!.data);
      assert.deepEqual([...chunked.nll], ids.slice(0, -1).map((_, t) => nextTokenLoss(whole.logits!, t, ids[t + 1])));
      chunked.final.forEach((carry, i) => {
        assert.deepEqual(carry.h, whole.layers[i].tensors.h!.data, `layer ${i} state`);
        assert.deepEqual(carry.conv, onePass.final[i].conv, `layer ${i} conv context`);
      });
      assert.deepEqual([...onePass.positions], [22]);
      assert.deepEqual(onePass.logits.data, whole.logits!.data.subarray(22 * m.config.vocabSize));
    });
  }

  it('mamba1-tiny over 32,768 tokens matches transformers\' float64 run within 1e-6', async () => {
    const golden = await openSafetensors(fixture('long', 'golden-32k.safetensors'));
    const read = async (k: string) => (await golden.readFloat(k, 'float64')).data;
    const ids = (await golden.readNative('input_ids')).data as Int32Array;
    const positions = [...((await golden.readNative('positions')).data as Int32Array)];
    const m = await model('mamba1-tiny');
    const run = await referenceForwardChunked(m, ids, { chunkLength: 4096, logitsAt: positions });
    assert.deepEqual([...run.positions], positions);
    const check = (what: string, got: ArrayLike<number>, want: ArrayLike<number>) => {
      const e = normalizedError(got, want);
      assert.ok(e <= 1e-6, `${what}: normalized error ${e.toExponential(2)}`);
    };
    check('logits_f64', run.logits.data, await read('logits_f64'));
    check('nll_f64', run.nll, await read('nll_f64'));
    for (const [i, carry] of run.final.entries()) {
      check(`layers.${i}.h_last_f64`, carry.h, await read(`layers.${i}.h_last_f64`));
      // conv_state [D, K] holds the last K inputs, the newest last; the carried context is the last K − 1, as rows.
      const state = await read(`layers.${i}.conv_state_f64`);
      const [K1, D] = carry.conv!.shape;
      const K = K1 + 1;
      const newest = Float64Array.from({ length: K1 * D }, (_, j) => state[(j % D) * K + 1 + Math.floor(j / D)]);
      check(`layers.${i}.conv_state_f64 (last ${K1} inputs)`, carry.conv!.data, newest);
    }
  });
});
