/**
 * The batched ablation sweep on the native WebGPU engine (src/engine/webgpu/sweep.ts) against the
 * float64 sweep (src/engine/analysis/sweep.ts: one reference forward per cell, the oracle) on
 * mamba1-tiny and mamba2-tiny, with the device's kernels and the GPU's (64-thread workgroups,
 * the chunked scan), with the clean logits in blocks of 8 rows so that cells start in different
 * blocks, and in one block (the default here) so that a cell's lm_head starts inside it. In one
 * block the cells of tokens 22 and 23 run from the cut at 16 (sweep.ts: cutStep), a plan of 8
 * tokens carrying in the clean run's states after token 15; in blocks there are no cuts.
 *
 * The bound is relative to the map's largest cell: ≤ 1e-3 · max |ref| for each of mean KL and
 * mean Δloss. The fp32 forward's logits are within ~1e-5 (normalized) of the float64 ones, and
 * KL and Δloss are differences of such logits (δ = z_clean − z_ablated), so their absolute error
 * scales with the logits' error, not with the cell's own size: a cell far below the largest is
 * compared in absolute terms. The per-cell relative error of the cells ≥ 1 % of the largest is
 * printed.
 */
/// <reference types="@webgpu/types" />
import * as assert from 'node:assert/strict';
import { ablationSweep } from '../../src/engine/analysis/sweep';
import { isLanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { WebGpuModel } from '../../src/engine/webgpu/model';
import { webgpuAblationSweep } from '../../src/engine/webgpu/sweep';
import { NodeFolderStore } from '../../src/node/files';
import { fixture } from './fixtures';
import { withDawn } from './dawnSuite';

const L = 24;
const ids = Array.from({ length: L }, (_, i) => (i * 53 + 7) % 1000);
const BOUND = 1e-3;

describe('the ablation sweep on the native WebGPU engine (Dawn + SwiftShader)', function () {
  this.timeout(300_000);
  let device: GPUDevice, software: boolean;
  withDawn((dawn) => ({ device, software } = dawn));

  const cases: [string, string, () => boolean, number | undefined][] = [
    ['mamba1-tiny', 'device default', () => software, 8],
    ['mamba1-tiny', 'device default', () => software, undefined],
    ['mamba2-tiny', 'device default', () => software, 8],
    ['mamba2-tiny', 'device default', () => software, undefined],
    ['mamba1-tiny', 'GPU kernels', () => false, 8],
    ['mamba1-tiny', 'GPU kernels', () => false, undefined],
  ];
  for (const [name, kernels, asSoftware, blockRows] of cases) {
    it(`${name} (${kernels}, ${blockRows ? `logits blocks of ${blockRows} rows` : 'one logits block'}): every cell's mean KL and mean Δloss within ${BOUND} of the largest of the float64 sweep's`, async () => {
      const m64 = await loadModelFolder(new NodeFolderStore(fixture(name)), 'float64');
      if (!isLanguageModel(m64)) throw new Error('a language model fixture');
      const layers = m64.layers.map((l) => l.index);
      const tokens = [0, 3, 7, 8, 15, 22, 23];
      const ref = ablationSweep(m64, ids, { layers, tokens });
      const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(fixture(name)), 'float32'), { software: asSoftware() });
      let progress = 0;
      try {
        const got = await webgpuAblationSweep(model, ids, { layers, tokens, blockRows, batch: 4, onProgress: (d) => (progress = d) });
        assert.deepEqual([got.layers, got.tokens], [layers, tokens]);
        assert.equal(progress, layers.length * tokens.length);
        for (const q of ['meanKl', 'meanDLoss'] as const) {
          const want = ref[q], have = got[q];
          const scale = Math.max(...want.map(Math.abs));
          assert.ok(scale > 1e-3, `${q}: the sweep moves the outputs (largest ${scale})`);
          let worst = 0, worstRelative = 0;
          for (let k = 0; k < want.length; k++) {
            assert.ok(Number.isFinite(have[k]), `${q} cell ${k} is ${have[k]}`);
            worst = Math.max(worst, Math.abs(have[k] - want[k]) / scale);
            if (Math.abs(want[k]) >= 0.01 * scale) worstRelative = Math.max(worstRelative, Math.abs(have[k] - want[k]) / Math.abs(want[k]));
          }
          console.log(`      ${name} ${kernels} ${q}: max |err| / max |ref| ${worst.toExponential(2)}, worst relative error of the cells ≥ 1% of the largest ${worstRelative.toExponential(2)}`);
          assert.ok(worst <= BOUND, `${q}: max |err| / max |ref| = ${worst}`);
        }
      } finally {
        model.dispose();
      }
    });
  }
});
