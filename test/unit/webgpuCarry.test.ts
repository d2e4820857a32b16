/**
 * A native WebGPU forward carried in (ForwardPlanOptions.carryIn) on Dawn + SwiftShader: a
 * sequence split at S, its second part run from the float64 reference's state and conv context
 * after token S − 1 (the reference's LayerCarry, written into the plan's carryIn), against the
 * reference's single pass over the whole sequence at positions S … L − 1: logits and every
 * layer's internals (and h and conv_state after tokens S and L − 1) within mamba_ssm's fp32 tolerance, the normalized errors under 1e-5. Every
 * scan path: the fused one (the device's kernels), chunks of 4 (the first chunk's start state and
 * the carry across chunks), the GPU's kernels, and the one-chunk path of a knockout.
 */
/// <reference types="@webgpu/types" />
import * as assert from 'node:assert/strict';
import { DEFAULT_TOLERANCE, diffArrays } from '../../src/engine/analysis/compare';
import { layerEdits, parseIntervention, type LayerEdit } from '../../src/engine/interventions';
import type { LoadedModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { normalizedError, type Tensor } from '../../src/engine/tensor';
import { nativeForward } from '../../src/engine/webgpu/forward';
import type { CaptureName } from '../../src/engine/webgpu/layer';
import { createForwardPlan } from '../../src/engine/webgpu/plan';
import { uploadWeights, type GpuWeights } from '../../src/engine/webgpu/weights';
import { NodeFolderStore } from '../../src/node/files';
import { fixture } from './fixtures';
import { withDawn } from './dawnSuite';

const TOL = DEFAULT_TOLERANCE.fp32;
const L = 24;
/** The split: the second part starts at token S. */
const S = 9;
const ids = Array.from({ length: L }, (_, i) => (i * 37 + 11) % 1000);
const COMPARED: readonly CaptureName[] = ['hidden_in', 'u', 'delta', 'y', 'hidden_out'];
/** Normalized error allowed: fp32 against float64 over a few layers of a tiny model. */
const NORMALIZED = 1e-5;

/** Rows from..to of a [rows, …] tensor. */
const rows = (t: { shape: readonly number[]; data: ArrayLike<number> }, from: number, to: number): Tensor<Float64Array> => {
  const W = t.data.length / t.shape[0];
  return { shape: [to - from, ...t.shape.slice(1)], data: Float64Array.from(Array.prototype.slice.call(t.data, from * W, to * W)) };
};

/** Within the elementwise fp32 tolerance and NORMALIZED; returns the normalized error. */
function expectClose(got: ArrayLike<number>, ref: Tensor, what: string): number {
  const d = diffArrays(ref.data as Float64Array, got, ref.shape, TOL);
  assert.equal(d.nonFinite.a + d.nonFinite.b, 0, `${what}: non-finite values`);
  assert.equal(d.firstDivergence, null, `${what}: first element out of tolerance ${JSON.stringify(d.firstDivergence)} (max abs error ${d.maxAbsError})`);
  assert.ok(d.normalizedError <= NORMALIZED, `${what}: normalized error ${d.normalizedError} > ${NORMALIZED}`);
  return d.normalizedError;
}

function edits(spec: readonly string[], tokens: number, model: LoadedModel<'float64'>, deltaColumns: number): Map<number, LayerEdit> | undefined {
  if (!spec.length) return undefined;
  return layerEdits(spec.map(parseIntervention), tokens, { layers: model.layers.length, deltaColumns, dModel: model.config.dModel }, new Map());
}

describe('the native WebGPU forward carried in from the reference\'s state (Dawn + SwiftShader)', function () {
  this.timeout(300_000);
  let device: GPUDevice, software: boolean;
  withDawn((dawn) => ({ device, software } = dawn));

  for (const name of ['mamba1-tiny', 'mamba2-tiny'] as const) {
    describe(name, () => {
      let ref64: LoadedModel<'float64'>;
      let weights: GpuWeights;
      let deltaColumns: number;
      before(async () => {
        ref64 = await loadModelFolder(new NodeFolderStore(fixture(name)), 'float64');
        weights = await uploadWeights(device, await loadModelFolder(new NodeFolderStore(fixture(name)), 'float32'));
        deltaColumns = referenceForward(ref64, ids.slice(0, 2), { layers: [0], keep: ['delta'] }).layers[0].tensors.delta!.shape[1];
      });
      after(() => weights?.destroy());

      // A knockout in the second part (layer 1, positions S + 2 → S + 6) makes its scan one chunk whatever the chunk length.
      const cases: [string, () => boolean, number | undefined, readonly string[]][] = [
        ['fused scan', () => software, undefined, []],
        ['chunks of 4', () => software, 4, []],
        ['GPU kernels', () => false, undefined, []],
        ['one chunk (knockout), chunks of 4 asked', () => software, 4, ['knockout layer=1 from=2 to=6']],
      ];
      for (const [shape, asSoftware, chunkLength, spec] of cases) {
        it(`tokens ${S}…${L - 1} from the carry after token ${S - 1} (${shape}) match the single pass`, async () => {
          const shifted = spec.map((s) => s.replace(/from=(\d+) to=(\d+)/, (_, a: string, b: string) => `from=${Number(a) + S} to=${Number(b) + S}`));
          const whole = edits(shifted, L, ref64, deltaColumns);
          const ref = referenceForward(ref64, ids, { statesAt: [S - 1, S, L - 1], ...(whole ? { edits: whole } : {}) });
          const part = edits(spec, L - S, ref64, deltaColumns);
          const layers = ref64.layers.map((l) => l.index);
          const plan = await createForwardPlan(weights, { tokens: L - S, software: asSoftware(), chunkLength, logits: true, carryIn: true, statesAt: [0, -1], capture: { layers, quantities: [...COMPARED, 'h', 'conv_state'] }, ...(part ? { edits: part } : {}) });
          try {
            const zeroStart = await nativeForward(plan, ids.slice(S));
            for (const layer of layers) {
              const carry = plan.carryIn[layer]!;
              const { h, conv_state } = ref.layers[layer].tensors;
              // Slot 0 of the reference's states: after token S − 1.
              device.queue.writeBuffer(carry.h.buffer, carry.h.offset, Float32Array.from(rows(h!, 0, 1).data));
              device.queue.writeBuffer(carry.conv.buffer, carry.conv.offset, Float32Array.from(rows(conv_state!, 0, 1).data));
            }
            const got = await nativeForward(plan, ids.slice(S));
            const errors = [expectClose(got.logits!.data, rows(ref.logits!, S, L), 'logits')];
            for (const layer of layers) {
              const mine = got.layers.find((l) => l.layer === layer)!.tensors;
              const want = ref.layers[layer].tensors;
              for (const q of COMPARED) errors.push(expectClose(mine[q]!.data, rows(want[q]!, S, L), `layer ${layer} ${q}`));
              // The states after tokens S (its conv context reaches into the carried one) and L − 1.
              errors.push(expectClose(mine.h!.data, rows(want.h!, 1, 3), `layer ${layer} h after tokens ${S}, ${L - 1}`));
              errors.push(expectClose(mine.conv_state!.data, rows(want.conv_state!, 1, 3), `layer ${layer} conv_state after tokens ${S}, ${L - 1}`));
            }
            console.log(`      ${name} ${shape}: largest normalized error ${Math.max(...errors).toExponential(2)}`);
            // The carry matters here: from zero the same plan is far off.
            const fromZero = normalizedError(zeroStart.logits!.data, rows(ref.logits!, S, L).data);
            assert.ok(fromZero > 1e-3, `the second part from zero states is ${fromZero} from the single pass: the split tests nothing`);
          } finally {
            plan.destroy();
          }
        });
      }
    });
  }
});
