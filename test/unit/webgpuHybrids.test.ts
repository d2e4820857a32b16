/**
 * The hybrid families on the native WebGPU engine (Dawn + SwiftShader), in fp32: against the
 * float64 reference (the oracle) every internal the reference records for every layer — each
 * path's output, the Mamba internals and states, the attention pattern, the experts chosen — and
 * against transformers 5.17's own runs (test/fixtures/families) the logits and every hidden state,
 * all by normalized error (max |err| / max |ref|) within 1e-4. The fixtures' paths add little to
 * the stream (|out| ~ 5e-4), so each is checked against its own scale, not elementwise.
 */
/// <reference types="@webgpu/types" />
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { InternalName } from '../../src/engine/internals';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { normalizedError } from '../../src/engine/tensor';
import { WebGpuModel } from '../../src/engine/webgpu/model';
import { NodeFolderStore } from '../../src/node/files';
import { fixture, openSafetensors } from './fixtures';
import { withDawn } from './dawnSuite';

const FAMILIES = ['jamba', 'bamba', 'granitemoehybrid', 'nemotron_h', 'zamba2', 'falcon_h1'] as const;
const TOL = 1e-4;
/** The states after the first token, one in the middle, and the last. */
const STATES_AT = [0, 20, -1];

describe('hybrid families on the native WebGPU engine (Dawn + SwiftShader)', function () {
  this.timeout(300_000);
  let device: GPUDevice, software: boolean;
  withDawn((dawn) => ({ device, software } = dawn));
  const report: string[] = [];
  after(() => {
    if (report.length) console.log(`      worst normalized error per family:\n${report.map((r) => `        ${r}`).join('\n')}`);
  });

  // The device's own kernels, and (on SwiftShader) the GPU's: 64-thread workgroups sharing keys and partial sums through workgroup memory.
  const kernels: [string, (software: boolean) => boolean][] = [['device default', (s) => s], ['GPU kernels', () => false]];
  for (const [kernelName, asSoftware] of kernels) for (const family of FAMILIES) {
    it(`${family} (${kernelName}): every internal of every layer matches the float64 reference, and the logits and hidden states transformers' within ${TOL}`, async () => {
      const folder = fixture('families', family);
      const dump = await openSafetensors(join(folder, 'dump.safetensors'));
      const ids = (await dump.readNative('input_ids')).data as Int32Array;
      const ref = referenceForward(await loadModelFolder(new NodeFolderStore(folder), 'float64'), ids, { statesAt: STATES_AT, attentionPattern: true });
      const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(folder), 'float32'), { software: asSoftware(software) });
      try {
        const got = await model.forward(ids, { statesAt: STATES_AT, attentionPattern: true });
        const errors: string[] = [];
        let worst = 0;
        const check = (name: string, actual: ArrayLike<number>, expected: ArrayLike<number>) => {
          const e = normalizedError(actual, expected);
          worst = Math.max(worst, e);
          if (!(e <= TOL)) errors.push(`${name} ${e.toExponential(2)}`);
        };
        check('logits vs hf_logits', got.logits!.data, (await dump.readFloat('hf_logits', 'float64')).data);
        check('logits vs reference', got.logits!.data, ref.logits!.data);
        let compared = 0;
        for (const l of ref.layers) {
          const mine = got.layers[l.layer].tensors;
          if (l.layer + 1 < ref.layers.length) check(`hidden_states.${l.layer + 1}`, mine.hidden_out!.data, (await dump.readFloat(`hidden_states.${l.layer + 1}`, 'float64')).data);
          for (const [name, want] of Object.entries(l.tensors) as [InternalName, { shape: readonly number[]; data: Float64Array }][]) {
            const t = mine[name];
            if (!t) {
              errors.push(`layer ${l.layer} ${name}: not captured`);
              continue;
            }
            assert.deepEqual(t.shape, want.shape, `layer ${l.layer} ${name} shape`);
            if (name === 'moe_experts') assert.deepEqual([...t.data], [...want.data], `layer ${l.layer}: the experts chosen`);
            else check(`layer ${l.layer} ${name}`, t.data, want.data);
            compared++;
          }
        }
        assert.ok(compared >= 4 * ref.layers.length, `${compared} internals compared`);
        report.push(`${family} (${kernelName}): ${worst.toExponential(1)} over ${compared} internals`);
        assert.deepEqual(errors, []);
      } finally {
        model.dispose();
      }
    });
  }

  it('the GPU kernels over more keys than a workgroup holds (144 tokens, 3 blocks of 64): attention, its pattern and the logits match the reference (bamba, falcon_h1, jamba)', async () => {
    const errors: string[] = [];
    for (const family of ['bamba', 'falcon_h1', 'jamba']) {
      const folder = fixture('families', family);
      const dump = await openSafetensors(join(folder, 'dump.safetensors'));
      const base = (await dump.readNative('input_ids')).data as Int32Array;
      const ids = Int32Array.from({ length: 3 * base.length }, (_, i) => base[i % base.length]);
      const ref = referenceForward(await loadModelFolder(new NodeFolderStore(folder), 'float64'), ids, { attentionPattern: true });
      const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(folder), 'float32'), { software: false });
      try {
        const got = await model.forward(ids, { attentionPattern: true, keep: ['attn_out', 'attn_pattern', 'hidden_out'] });
        const check = (name: string, a: ArrayLike<number>, b: ArrayLike<number>) => {
          const e = normalizedError(a, b);
          if (!(e <= TOL)) errors.push(`${family} ${name} ${e.toExponential(2)}`);
        };
        check('logits', got.logits!.data, ref.logits!.data);
        for (const l of ref.layers) {
          for (const name of ['attn_out', 'attn_pattern', 'hidden_out'] as const) if (l.tensors[name]) check(`layer ${l.layer} ${name}`, got.layers[l.layer].tensors[name]!.data, l.tensors[name]!.data);
        }
      } finally {
        model.dispose();
      }
    }
    assert.deepEqual(errors, []);
  });
});
