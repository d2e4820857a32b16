/**
 * Model families beyond plain Mamba, against transformers' own runs of them
 * (test/fixtures/families/<family>: copied from the reference fixtures, random weights, 160 tokens):
 * the logits, every output_hidden_states entry and each mixer's output, layer by layer.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../../src/engine/formats/checkpoint';
import { parseModelConfig } from '../../src/engine/model/config';
import { loadModel, loadModelFolder } from '../../src/engine/model/load';
import { isLanguageModel } from '../../src/engine/model/graph';
import { referenceForward } from '../../src/engine/reference/forward';
import { rmsNorm } from '../../src/engine/reference/ops';
import { createTfModel, tfjsForward } from '../../src/engine/tfjs/forward';
import { normalizedError, type Tensor } from '../../src/engine/tensor';
import { NodeFolderStore } from '../../src/node/files';
import { useNodeBackend } from '../../src/node/tfjsBackends';
import { fixture, openSafetensors } from './fixtures';

describe('FalconMamba (model_type falcon_mamba) against transformers', function () {
  const folder = fixture('families', 'falcon_mamba');
  const golden = async () => {
    const dump = await openSafetensors(fixture('families', 'falcon_mamba', 'dump.safetensors'));
    return { dump, ids: (await dump.readNative('input_ids')).data as Int32Array, read: (k: string) => dump.readFloat(k, 'float64') };
  };

  it('the float64 reference matches the logits, hidden states and mixer outputs within 1e-5', async () => {
    const { ids, read } = await golden();
    const model = await loadModelFolder(new NodeFolderStore(folder), 'float64');
    assert.ok(isLanguageModel(model) && model.config.arch === 'mamba1' && model.config.dtBcNormEps === 1e-6, 'read as Mamba-1 with the dt/B/C norm');
    const r = referenceForward(model, ids);
    const check = (name: string, actual: ArrayLike<number>, expected: Tensor<Float64Array>) => {
      const e = normalizedError(actual, expected.data);
      assert.ok(e <= 1e-5, `${name}: normalized error ${e.toExponential(2)}`);
    };
    check('hf_logits', r.logits!.data, await read('hf_logits'));
    // In this run hidden_states.k is the stream after layer k, and the last one is after the final
    // norm (checked: each matches that and no other stream to 3e-7, the others by > 0.6).
    check('hidden_states.0', r.layers[0].tensors.hidden_out!.data, await read('hidden_states.0'));
    check('hidden_states.1', r.layers[1].tensors.hidden_out!.data, await read('hidden_states.1'));
    check('hidden_states.2', rmsNorm(r.layers[1].tensors.hidden_out!, model.normF, model.config.eps).data, await read('hidden_states.2'));
    for (const l of r.layers) check(`layers.${l.layer}.mixer`, l.tensors.out!.data, await read(`layers.${l.layer}.mixer`));
  });

  it('read as plain Mamba-1 its mixer outputs are far off: the fixture tests the norm, layer by layer', async () => {
    // The random-weight mixers add little to the residual stream, so the logits alone barely tell.
    const { ids, read } = await golden();
    const text = readFileSync(join(folder, 'config.json'), 'utf8').replace('"falcon_mamba"', '"mamba"');
    const plain = await loadModel(parseModelConfig(text, 'config.json'), await openCheckpoint(new NodeFolderStore(folder)), 'float64');
    const e = normalizedError(referenceForward(plain, ids).layers[0].tensors.out!.data, (await read('layers.0.mixer')).data);
    assert.ok(e > 1e-2, `plain Mamba-1's layer 0 mixer would be ${e.toExponential(2)} off`);
  });

  it('the tfjs forward in fp32 on cpu matches the logits and mixer outputs within 1e-4', async () => {
    const { ids, read } = await golden();
    await useNodeBackend('cpu');
    const tfModel = createTfModel(await loadModelFolder(new NodeFolderStore(folder), 'float32'));
    try {
      const r = await tfjsForward(tfModel, ids);
      const e = normalizedError(r.logits!.data, (await read('hf_logits')).data);
      assert.ok(e <= 1e-4, `hf_logits: ${e.toExponential(2)}`);
      for (const l of r.layers) {
        const m = normalizedError(l.tensors.out!.data, (await read(`layers.${l.layer}.mixer`)).data);
        assert.ok(m <= 1e-4, `layers.${l.layer}.mixer: ${m.toExponential(2)}`);
      }
    } finally {
      tfModel.dispose();
    }
  });
});
