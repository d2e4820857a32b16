/**
 * Interventions in the native WebGPU forward (src/engine/webgpu/edits.ts) on Dawn + SwiftShader,
 * against the float64 reference forward given the same edits (the oracle, itself checked
 * against direct recomputations in interventions.test.ts): the logits and the internals of the
 * edited layer and every later one within mamba_ssm's fp32 tolerance, on mamba1-tiny and
 * mamba2-tiny (the fused scan, and chunks of 4 tokens), with the device's kernels and the GPU's
 * (64-thread workgroups), and on a hybrid (Jamba's Mamba layer). Positions before an edit are
 * those of the clean GPU run.
 */
/// <reference types="@webgpu/types" />
import * as assert from 'node:assert/strict';
import { DEFAULT_TOLERANCE, diffArrays } from '../../src/engine/analysis/compare';
import { layerEdits, parseIntervention, type Intervention, type LayerEdit } from '../../src/engine/interventions';
import type { InternalName } from '../../src/engine/internals';
import type { LoadedModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { normalizedError, type Tensor } from '../../src/engine/tensor';
import { CAPTURE_NAMES } from '../../src/engine/webgpu/layer';
import { WebGpuModel } from '../../src/engine/webgpu/model';
import { uploadWeights, type GpuWeights } from '../../src/engine/webgpu/weights';
import { NodeFolderStore } from '../../src/node/files';
import { fixture } from './fixtures';
import { forwardOnce, withDawn } from './dawnSuite';

const TOL = DEFAULT_TOLERANCE.fp32;
const L = 20;
const ids = Array.from({ length: L }, (_, i) => (i * 53 + 7) % 1000);
const STATES_AT = [6, 11, -1];
/** The internals compared in the edited layer and after it. */
const COMPARED: readonly InternalName[] = ['hidden_in', 'delta', 'y', 'h', 'hidden_out'];

function expectClose(got: ArrayLike<number>, ref: Tensor, what: string): void {
  const d = diffArrays(ref.data as Float64Array, got, ref.shape, TOL);
  assert.equal(d.nonFinite.a + d.nonFinite.b, 0, `${what}: non-finite values`);
  assert.equal(d.firstDivergence, null, `${what}: first element out of tolerance ${JSON.stringify(d.firstDivergence)} (max abs error ${d.maxAbsError})`);
}

const rows = (t: { shape: readonly number[]; data: ArrayLike<number> }, from: number, to: number) => {
  const W = t.data.length / t.shape[0];
  return Float64Array.from(Array.prototype.slice.call(t.data, from * W, to * W));
};

/** Each intervention, the first position it changes, and its layer. */
const CASES: readonly { spec: readonly string[]; first: number; layer: number }[] = [
  { spec: ['ablate-write layer=1 tokens=7,12'], first: 7, layer: 1 },
  { spec: ['scale-delta layer=1 tokens=5:9 factor=0.25 channels=0,1'], first: 5, layer: 1 },
  { spec: ['scale-delta layer=0 tokens=3 factor=3'], first: 3, layer: 0 },
  { spec: ['zero-state layer=1 token=9'], first: 9, layer: 1 },
  { spec: ['knockout layer=1 from=4 to=10'], first: 10, layer: 1 },
  { spec: ['steer layer=1 tokens=3,8 vector=v.safetensors:v scale=0.5'], first: 3, layer: 1 },
  { spec: ['ablate-write layer=0 tokens=6', 'zero-state layer=1 token=13', 'knockout layer=1 from=8 to=15', 'steer layer=1 tokens=10 vector=v.safetensors:v scale=-1'], first: 6, layer: 0 },
];

const steerVector = (H: number) => Float64Array.from({ length: H }, (_, j) => Math.sin(j));

function editsFor(spec: readonly string[], model: LoadedModel<'float64'>, deltaColumns: number): Map<number, LayerEdit> {
  const list = spec.map(parseIntervention);
  const H = model.config.dModel;
  const vectors = new Map(list.filter((i) => i.kind === 'steer').map((i) => [i, steerVector(H)] as [Intervention, Float64Array]));
  return layerEdits(list, L, { layers: model.layers.length, deltaColumns, dModel: H }, vectors);
}

describe('interventions on the native WebGPU forward (Dawn + SwiftShader)', function () {
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
        deltaColumns = referenceForward(ref64, ids.slice(0, 2), { layers: [0], keep: ['delta'] }).layers[0].tensors.delta!.shape[1];
      });
      const gpuWeights = async () => (weights ??= await uploadWeights(device, await loadModelFolder(new NodeFolderStore(fixture(name)), 'float32')));
      after(() => weights?.destroy());

      // The device's kernels (SwiftShader: the fused scan), the device's with chunks of 4, and the GPU's (64-thread workgroups, chunks of 16;
      // ~20 s a case on SwiftShader: the ablation across chunks and the combined case only).
      const shapes: [string, () => boolean, number | undefined, typeof CASES][] = [['device default', () => software, undefined, CASES], ['chunks of 4', () => software, 4, CASES], ['GPU kernels', () => false, undefined, [CASES[0], CASES[CASES.length - 1]]]];
      for (const [shapeName, asSoftware, chunkLength, cases] of shapes) {
        for (const c of cases) {
          it(`${c.spec.join(' + ')} (${shapeName}): logits and layers ${c.layer}… match the reference; positions before ${c.first} unchanged`, async () => {
            const w = await gpuWeights();
            const edits = editsFor(c.spec, ref64, deltaColumns);
            const layers = ref64.layers.map((l) => l.index).filter((i) => i >= c.layer);
            const ref = referenceForward(ref64, ids, { edits, statesAt: STATES_AT });
            const run = (e?: Map<number, LayerEdit>) => forwardOnce(w, { tokens: L, software: asSoftware(), chunkLength, logits: true, statesAt: STATES_AT, capture: { layers, quantities: [...CAPTURE_NAMES] }, ...(e ? { edits: e } : {}) }, ids);
            const [got, clean] = [await run(edits), await run()];
            expectClose(got.logits!.data, ref.logits!, 'logits');
            for (const layer of layers) {
              const mine = got.layers.find((l) => l.layer === layer)!.tensors;
              const want = ref.layers[layer].tensors;
              for (const q of COMPARED) expectClose(mine[q]!.data, want[q]!, `layer ${layer} ${q}`);
            }
            const before = normalizedError(rows(got.logits!, 0, c.first), rows(clean.logits!, 0, c.first));
            assert.ok(before <= 1e-6, `logits before position ${c.first} moved: ${before}`);
            const after = normalizedError(rows(got.logits!, c.first, L), rows(clean.logits!, c.first, L));
            assert.ok(after > 1e-4, `the edit changes the logits from position ${c.first} on (${after})`);
          });
        }
      }
    });
  }

  it('jamba: ablate-write, zero-state and scale-delta in a hybrid layer\'s Mamba operation, and steering an attention layer, match the reference', async () => {
    const folder = fixture('families', 'jamba');
    const m64 = await loadModelFolder(new NodeFolderStore(folder), 'float64');
    const clean = referenceForward(m64, ids);
    const mambaLayer = clean.layers.find((l) => l.tensors.delta)!;
    const other = clean.layers.find((l) => !l.tensors.delta)!;
    const spec = [`ablate-write layer=${mambaLayer.layer} tokens=4`, `zero-state layer=${mambaLayer.layer} token=12`, `scale-delta layer=${mambaLayer.layer} tokens=6:9 factor=0.5`, `steer layer=${other.layer} tokens=2 vector=v:v scale=0.3`];
    const edits = editsFor(spec, m64, mambaLayer.tensors.delta!.shape[1]);
    const ref = referenceForward(m64, ids, { edits });
    const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(folder), 'float32'), { software });
    try {
      const got = await model.forward(ids, { edits });
      const e = normalizedError(got.logits!.data, ref.logits!.data);
      assert.ok(e <= 1e-4, `logits: normalized error ${e}`);
      for (const l of ref.layers) {
        for (const q of ['hidden_out', 'delta', 'y'] as const) {
          if (!l.tensors[q]) continue;
          const err = normalizedError(got.layers[l.layer].tensors[q]!.data, l.tensors[q]!.data);
          assert.ok(err <= 1e-4, `layer ${l.layer} ${q}: normalized error ${err}`);
        }
      }
    } finally {
      model.dispose();
    }
  });
});
