/**
 * Model families beyond plain Mamba, against transformers' own runs of them
 * (test/fixtures/families/<family>: copied from the reference fixtures, random weights, 160 tokens;
 * mamba2_groups' dump trimmed to the keys used here): the logits, output_hidden_states entries
 * and each mixer's output, layer by layer.
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
import { WebGpuModel } from '../../src/engine/webgpu/model';
import { useNodeBackend } from '../../src/node/tfjsBackends';
import { createDawnDevice } from '../../src/node/webgpu';
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

describe('Mamba-2 with 2 groups: the gated norm per group (mamba_ssm) or over d_inner (transformers)', function () {
  this.timeout(120_000);
  const folder = fixture('families', 'mamba2_groups');
  const golden = async () => {
    const dump = await openSafetensors(fixture('families', 'mamba2_groups', 'dump.safetensors'));
    return { ids: (await dump.readNative('input_ids')).data as Int32Array, read: (k: string) => dump.readFloat(k, 'float64') };
  };
  const within = (name: string, actual: ArrayLike<number>, expected: Tensor<Float64Array>, bound: number) => {
    const e = normalizedError(actual, expected.data);
    assert.ok(e <= bound, `${name}: normalized error ${e.toExponential(2)} > ${bound}`);
  };

  it('the float64 reference gives grouped_logits by default, and transformers\' logits, hidden states and mixer outputs with its norm, within 1e-5', async () => {
    const { ids, read } = await golden();
    const grouped = await loadModelFolder(new NodeFolderStore(folder), 'float64');
    assert.ok(grouped.config.arch === 'mamba2' && grouped.config.nGroups === 2 && grouped.config.normGroupSize === 64, 'per group by default');
    within('grouped_logits', referenceForward(grouped, ids).logits!.data, await read('grouped_logits'), 1e-5);
    const hf = await loadModelFolder(new NodeFolderStore(folder), 'float64', 'transformers');
    assert.ok(hf.config.arch === 'mamba2' && hf.config.normGroupSize === 128);
    const r = referenceForward(hf, ids);
    within('hf_logits', r.logits!.data, await read('hf_logits'), 1e-5);
    for (const l of r.layers) within(`layers.${l.layer}.mixer`, l.tensors.out!.data, await read(`layers.${l.layer}.mixer`), 1e-5);
    // As in the FalconMamba run, hidden_states.k is the stream after layer k; the last is after the final norm.
    within('hidden_states.0', r.layers[0].tensors.hidden_out!.data, await read('hidden_states.0'), 1e-5);
    within('hidden_states.1', r.layers[1].tensors.hidden_out!.data, await read('hidden_states.1'), 1e-5);
    within('hidden_states.2', rmsNorm(r.layers[1].tensors.hidden_out!, hf.normF, hf.config.eps).data, await read('hidden_states.2'), 1e-5);
    // The two semantics are far apart on this model: the fixture tells them apart.
    const apart = normalizedError((await read('grouped_logits')).data, (await read('hf_logits')).data);
    assert.ok(apart > 1e-2, `grouped and whole-d_inner logits differ by only ${apart}`);
  });

  it('the tfjs forward (cpu) and the native WebGPU forward (Dawn) follow the same choice within 1e-4', async () => {
    const { ids, read } = await golden();
    await useNodeBackend('cpu');
    const { device, info } = await createDawnDevice();
    try {
      for (const [norm, key] of [['mamba_ssm', 'grouped_logits'], ['transformers', 'hf_logits']] as const) {
        const model = await loadModelFolder(new NodeFolderStore(folder), 'float32', norm);
        const tfModel = createTfModel(model);
        try {
          within(`tfjs ${norm}`, (await tfjsForward(tfModel, ids, { layers: [] })).logits!.data, await read(key), 1e-4);
        } finally {
          tfModel.dispose();
        }
        const gpu = await WebGpuModel.upload(device, model, { software: info.software });
        try {
          within(`webgpu ${norm}`, (await gpu.forward(ids, { layers: [] })).logits!.data, await read(key), 1e-4);
        } finally {
          gpu.dispose();
        }
      }
    } finally {
      device.destroy();
    }
  });
});
