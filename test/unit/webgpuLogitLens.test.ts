/**
 * The logit lens on the native WebGPU engine (src/engine/webgpu/logitLens.ts) on Dawn +
 * SwiftShader, against the float64 reference's lens (ForwardOptions.logitLens: each kept layer's
 * hidden_out through norm_f, lm_head and the logits multiplier, in float64; logitLens.test.ts
 * checks it against the head written out by loops): per layer and position, the top 5 (the same
 * ids except where two are tied within the fp32 tolerance) and their probabilities, and the
 * next token's probability and rank, with expectPredictions' tolerances. On mamba1-tiny and on
 * Granite 4.0-H (logits_scaling 8: the multiplier folded into norm_f's weight), through
 * WebGpuModel.forward with the device's kernels and the GPU's; and in logits blocks of 8 rows.
 */
/// <reference types="@webgpu/types" />
import * as assert from 'node:assert/strict';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { normalizedError } from '../../src/engine/tensor';
import { webgpuLogitLens } from '../../src/engine/webgpu/logitLens';
import { WebGpuModel } from '../../src/engine/webgpu/model';
import { NodeFolderStore } from '../../src/node/files';
import { expectPredictions } from './expectPredictions';
import { fixture } from './fixtures';
import { withDawn } from './dawnSuite';

const K = 5;
/** As webgpuHybrids.test.ts: max |err| / max |ref|. */
const NORMALIZED = 1e-4;
const L = 20;
const ids = Array.from({ length: L }, (_, i) => (i * 53 + 7) % 1000);

describe('the logit lens on the native WebGPU engine (Dawn + SwiftShader)', function () {
  this.timeout(300_000);
  let device: GPUDevice, software: boolean;
  withDawn((dawn) => ({ device, software } = dawn));

  // Granite's fixture layers add little to the stream (|out| ~ 5e-4): its layers' lenses are alike, and it is here for its logits multiplier.
  const cases: [string[], string, () => boolean, boolean][] = [
    [['mamba1-tiny'], 'device default', () => software, true],
    [['mamba1-tiny'], 'GPU kernels', () => false, true],
    [['families', 'granitemoehybrid'], 'device default', () => software, false],
  ];
  for (const [folder, kernels, asSoftware, layersDiffer] of cases) {
    it(`${folder.at(-1)} (${kernels}): every layer's lens is the float64 reference's; hidden_out stays out of the result unless kept`, async () => {
      const ref = referenceForward(await loadModelFolder(new NodeFolderStore(fixture(...folder)), 'float64'), ids, { logitLens: K });
      const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(fixture(...folder)), 'float32'), { software: asSoftware() });
      try {
        const got = await model.forward(ids, { logitLens: K, keep: ['delta'] });
        assert.deepEqual(got.layers.map((l) => l.layer), ref.layers.map((l) => l.layer));
        for (const l of ref.layers) {
          const mine = got.layers[l.layer];
          assert.equal(mine.tensors.hidden_out, undefined, `layer ${l.layer}: hidden_out was not kept`);
          assert.ok(mine.lens, `layer ${l.layer} has a lens`);
          expectPredictions(mine.lens, l.lens!, `layer ${l.layer} lens`);
          // Granite's tiny head spreads its probabilities near 1/V, inside the fp32 atol: each is also checked against its own scale.
          for (const q of ['probs', 'nextProb'] as const) {
            const e = normalizedError(mine.lens[q].subarray(0, (L - 1) * (q === 'probs' ? K : 1)), l.lens![q].subarray(0, (L - 1) * (q === 'probs' ? K : 1)));
            assert.ok(e <= NORMALIZED, `layer ${l.layer} lens ${q}: normalized error ${e}`);
          }
        }
        // The layers read differently (so a lens of the wrong layer would fail above).
        const [first, last] = [ref.layers[0].lens!, ref.layers.at(-1)!.lens!];
        if (layersDiffer) assert.ok(first.nextProb.some((p, t) => t + 1 < L && Math.abs(p - last.nextProb[t]) > 1e-3), 'the first and last layers\' lenses differ');
        const kept = await model.forward(ids, { logitLens: K, layers: [0], keep: ['hidden_out'] });
        assert.ok(kept.layers[0].tensors.hidden_out && kept.layers[0].lens, 'a kept hidden_out stays, beside the lens');
      } finally {
        model.dispose();
      }
    });
  }

  it('mamba1-tiny in logits blocks of 8 rows (three blocks, the last of 4): the same lens', async () => {
    const ref = referenceForward(await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float64'), ids, { logitLens: K });
    const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float32'), { software });
    try {
      const streams = ref.layers.map((l) => l.tensors.hidden_out!.data);
      const lens = await webgpuLogitLens(model.weights, ids, streams, { k: K, software, logitsBlockBytes: 8 * 4 * model.config.vocabSize });
      ref.layers.forEach((l, i) => expectPredictions(lens[i], l.lens!, `layer ${l.layer} lens in blocks`));
    } finally {
      model.dispose();
    }
  });
});
