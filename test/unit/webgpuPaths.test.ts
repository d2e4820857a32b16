/**
 * ablate-path on the native WebGPU engine (layers/hybrid/webgpu.ts) on Dawn + SwiftShader, against
 * the float64 reference given the same edit (the oracle: interventions.paths.test.ts checks it
 * against the layer's composition written out by hand), on every hybrid family fixture: each path
 * the model has, at the first layer with it, replaced by zeros and by its mean over the positions.
 * Compared by normalized error within 1e-4, as webgpuHybrids.test.ts: the logits, every layer's
 * hidden_out, the ablated layer's contribution to the stream (hidden_out − hidden_in: the fixtures'
 * paths are small next to the stream, so the stream alone would hardly tell an ablation from none)
 * and the path's recorded output (zero mode: exactly 0).
 */
/// <reference types="@webgpu/types" />
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { editedModel } from '../../src/engine/interventionInputs';
import { layerEdits, parseIntervention, type PathAblation } from '../../src/engine/interventions';
import type { InternalName } from '../../src/engine/internals';
import { isLanguageModelConfig } from '../../src/engine/model/config';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { normalizedError } from '../../src/engine/tensor';
import { WebGpuModel } from '../../src/engine/webgpu/model';
import { NodeFolderStore } from '../../src/node/files';
import { fixture, openSafetensors } from './fixtures';
import { withDawn } from './dawnSuite';

const FAMILIES = ['jamba', 'bamba', 'granitemoehybrid', 'nemotron_h', 'zamba2', 'falcon_h1'] as const;
const TOL = 1e-4;
const L = 24;
/** Where each path's output is recorded. */
const RECORDED: Readonly<Record<PathAblation['path'], InternalName>> = { ssm: 'ssm_out', attention: 'attn_out', mlp: 'mlp_out' };

const contribution = (t: Partial<Record<InternalName, { data: ArrayLike<number> }>>) => Float64Array.from(t.hidden_out!.data, (v, i) => v - t.hidden_in!.data[i]);

describe('ablate-path on the native WebGPU engine (Dawn + SwiftShader)', function () {
  this.timeout(300_000);
  let device: GPUDevice, software: boolean;
  withDawn((dawn) => ({ device, software } = dawn));

  for (const family of FAMILIES) {
    it(`${family}: each path at its first layer, mode=zero and mode=mean, matches the float64 reference within ${TOL}`, async () => {
      const folder = fixture('families', family);
      const dump = await openSafetensors(join(folder, 'dump.safetensors'));
      const ids = ((await dump.readNative('input_ids')).data as Int32Array).slice(0, L);
      const m64 = await loadModelFolder(new NodeFolderStore(folder), 'float64');
      if (!isLanguageModelConfig(m64.config)) throw new Error(`${family}: a language model fixture`);
      const shape = editedModel(m64.config);
      const cleanRef = referenceForward(m64, ids);
      const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(folder), 'float32'), { software });
      const errors: string[] = [];
      let cases = 0;
      try {
        for (const path of ['ssm', 'attention', 'mlp'] as const) {
          const layer = shape.paths!.findIndex((p) => p.includes(path));
          if (layer < 0) continue;
          for (const mode of ['zero', 'mean'] as const) {
            const what = `${family} layer ${layer} path=${path} mode=${mode}`;
            const edits = layerEdits([parseIntervention(`ablate-path layer=${layer} path=${path} mode=${mode}`)], L, shape);
            const ref = referenceForward(m64, ids, { edits });
            const got = await model.forward(ids, { edits });
            const check = (name: string, actual: ArrayLike<number>, expected: ArrayLike<number>) => {
              const e = normalizedError(actual, expected);
              if (!(e <= TOL)) errors.push(`${what}: ${name} ${e.toExponential(2)}`);
            };
            check('logits', got.logits!.data, ref.logits!.data);
            for (const l of ref.layers) check(`layer ${l.layer} hidden_out`, got.layers[l.layer].tensors.hidden_out!.data, l.tensors.hidden_out!.data);
            const want = contribution(ref.layers[layer].tensors);
            // The check discriminates: the ablation moves the layer's contribution by more than ten times the tolerance
            // (falcon_h1's Mamba path, under its small multiplier beside the MLP's: 2.1e-3).
            const moved = normalizedError(want, contribution(cleanRef.layers[layer].tensors));
            assert.ok(moved > 10 * TOL, `${what}: the ablation moves the layer's contribution by ${moved}`);
            check(`layer ${layer} out (the mixer branch)`, got.layers[layer].tensors.out!.data, ref.layers[layer].tensors.out!.data);
            check(`layer ${layer} hidden_out − hidden_in`, contribution(got.layers[layer].tensors), want);
            const recorded = got.layers[layer].tensors[RECORDED[path]]!.data;
            if (mode === 'zero') assert.ok(recorded.every((v) => v === 0), `${what}: ${RECORDED[path]} is zero`);
            else check(RECORDED[path], recorded, ref.layers[layer].tensors[RECORDED[path]]!.data);
            cases++;
          }
        }
      } finally {
        model.dispose();
      }
      assert.ok(cases >= 2, `${family}: ${cases} cases`);
      assert.deepEqual(errors, []);
    });
  }
});
