/**
 * Long sequences in chunks on the native WebGPU engine (webgpuLongRun: the carries copied on the
 * GPU from chunk to chunk, every chunk submitted without waiting) on Dawn + SwiftShader: against the single pass (one plan over the whole sequence, its [L, V]
 * logits read back and the loss taken from them on the host) the logits at every position, the
 * loss and each layer's final state and conv context within 1e-6 normalized; and mamba1-tiny over
 * long/golden-32k in 2048-token chunks against transformers' float64 run within 1e-4 (issue 13
 * item 6).
 */
/// <reference types="@webgpu/types" />
import assert from 'node:assert/strict';
import { loadModelFolder } from '../../src/engine/model/load';
import { nextTokenLoss } from '../../src/engine/predictions';
import { normalizedError } from '../../src/engine/tensor';
import { webgpuLongRun } from '../../src/engine/webgpu/longRun';
import { WebGpuModel } from '../../src/engine/webgpu/model';
import { NodeFolderStore } from '../../src/node/files';
import { fixture, openSafetensors } from './fixtures';
import { forwardOnce, withDawn } from './dawnSuite';

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number): number {
  const e = normalizedError(got, want);
  assert.ok(e <= tol, `${what}: normalized error ${e.toExponential(2)} over ${tol}`);
  return e;
}

describe('long sequences in chunks (native WebGPU, Dawn + SwiftShader)', function () {
  this.timeout(300_000);
  let device: GPUDevice, software: boolean;
  withDawn((dawn) => ({ device, software } = dawn));

  for (const name of ['mamba1-tiny', 'mamba2-tiny']) {
    // 300 tokens in chunks of 97: three plans' worth of one length and a 9-token last chunk; chunks of 2 are shorter than the conv's K − 1 = 3 inputs of context.
    for (const [tokens, chunkLength] of [[300, 97], [23, 2]]) {
      it(`${name}: ${tokens} tokens in chunks of ${chunkLength} are the single pass`, async () => {
        const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(fixture(name)), 'float32'), { software });
        try {
          const V = model.config.vocabSize;
          const ids = Array.from({ length: tokens }, (_, i) => (i * 37 + 11) % V);
          const layers = Array.from({ length: model.config.nLayer }, (_, i) => i);
          const whole = await forwardOnce(model.weights, { tokens, software, logits: true, statesAt: [-1], capture: { layers, quantities: ['h', 'conv_state'] }, pipelines: model.pipelines }, ids);
          let progress = 0;
          const chunked = await webgpuLongRun(model, ids, { chunkLength, logitsAt: ids.map((_, t) => t), onProgress: (t) => (progress = t) });
          assert.equal(progress, tokens, 'progress reaches the last token');
          const errors = [
            close('logits', chunked.logits.data, whole.logits!.data, 1e-6),
            close('nll', chunked.nll, ids.slice(0, -1).map((_, t) => nextTokenLoss(whole.logits!, t, ids[t + 1])), 1e-6),
          ];
          chunked.final.forEach((carry, i) => {
            const { h, conv_state } = whole.layers[i].tensors;
            errors.push(close(`layer ${i} state`, carry.h, h!.data, 1e-6));
            assert.deepEqual(carry.conv!.shape, conv_state!.shape.slice(1));
            errors.push(close(`layer ${i} conv context`, carry.conv!.data, conv_state!.data, 1e-6));
          });
          // The second run reuses the model's chunk plans, whose carryIn holds the first run's final states: it starts from zeros all the same.
          const again = await webgpuLongRun(model, ids, { chunkLength, logitsAt: ids.map((_, t) => t) });
          assert.deepEqual(again.nll, chunked.nll, 'a second run on the kept plans gives the same loss');
          again.final.forEach((carry, i) => assert.deepEqual(carry.h, chunked.final[i].h, `a second run's layer ${i} state`));
          console.log(`      largest normalized error ${Math.max(...errors).toExponential(2)}`);
        } finally {
          model.dispose();
        }
      });
    }
  }

  it('the loss stays finite where the next token\'s fp32 probability underflows: logits spread over hundreds of nats', async () => {
    // The final norm's weight × 300 spreads the logits far past fp32's ~103 nats of exp(v − max); the loss is the log-probability, not −log of an underflowed 0.
    const loaded = await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float32');
    const { normF } = loaded;
    assert.ok(normF, 'mamba1-tiny has a final norm');
    const wide = { ...loaded, normF: { shape: normF.shape, data: normF.data.map((w) => w * 300) } };
    const model = await WebGpuModel.upload(device, wide, { software });
    try {
      const V = model.config.vocabSize;
      const ids = Array.from({ length: 64 }, (_, i) => (i * 37 + 11) % V);
      const whole = await forwardOnce(model.weights, { tokens: ids.length, software, logits: true, pipelines: model.pipelines }, ids);
      const want = ids.slice(0, -1).map((_, t) => nextTokenLoss(whole.logits!, t, ids[t + 1]));
      assert.ok(Math.max(...want) > 200, `the test's losses reach past fp32's exp range (largest ${Math.max(...want).toFixed(0)} nats)`);
      const run = await webgpuLongRun(model, ids, { chunkLength: 24 });
      close('nll', run.nll, want, 1e-6);
      // The forward's predictions carry the same log-probability, which the panel's long run takes its loss from.
      const forward = await model.forward(ids, { layers: [], predictions: 1 });
      close('forward nextLogProb', Array.from(forward.predictions!.nextLogProb!.subarray(0, -1), (v) => -v), want, 1e-6);
    } finally {
      model.dispose();
    }
  });

  it('a hybrid with attention is refused in one line before any chunk runs: a carried state does not hold the keys', async () => {
    const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(fixture('families', 'jamba')), 'float32'), { software });
    try {
      await assert.rejects(webgpuLongRun(model, [1, 2, 3, 4], { chunkLength: 2 }), /^.*layer \d+: attends to the tokens before it, which a carried state does not hold/);
      await assert.rejects(model.forward([1, 2], {}, []), /attends to the tokens before it/);
    } finally {
      model.dispose();
    }
  });

  // The first 4,096 tokens of the fixture (two chunks): the whole 32,768 take 257 s here on SwiftShader (the tfjs test runs them all).
  it('mamba1-tiny over the first 4,096 tokens of golden-32k in 2048-token chunks matches transformers\' float64 run within 1e-4', async () => {
    const TOKENS = 4096;
    const golden = await openSafetensors(fixture('long', 'golden-32k.safetensors'));
    const read = async (k: string) => (await golden.readFloat(k, 'float64')).data;
    const ids = ((await golden.readNative('input_ids')).data as Int32Array).subarray(0, TOKENS);
    const all = [...((await golden.readNative('positions')).data as Int32Array)];
    const positions = all.filter((p) => p < TOKENS);
    const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float32'), { software });
    try {
      const started = Date.now();
      const run = await webgpuLongRun(model, ids, { chunkLength: 2048, logitsAt: positions });
      const V = model.config.vocabSize;
      const errors = [
        close('logits_f64', run.logits.data, (await read('logits_f64')).subarray(0, positions.length * V), 1e-4),
        close('nll_f64', run.nll, (await read('nll_f64')).subarray(0, TOKENS - 1), 1e-4),
      ];
      console.log(`      ${ids.length} tokens in ${((Date.now() - started) / 1000).toFixed(1)} s; largest normalized error ${Math.max(...errors).toExponential(2)}`);
    } finally {
      model.dispose();
    }
  });
});
