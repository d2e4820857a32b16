/**
 * patch-state in the native WebGPU forward (src/engine/webgpu/patch.ts) on Dawn + SwiftShader,
 * against the float64 reference forward given the same edits (the oracle: interventions.patch.test
 * checks it against the definition): the logits and, from the patched layer on, every internal
 * (h and conv_state at the patched token and after it included) within mamba_ssm's fp32 tolerance
 * and 1e-5 normalized, on mamba1-tiny and mamba2-tiny. The patch is another run's state and conv
 * context after the token, as tfjsInterventions.test makes it (the sample reversed, from its
 * reference run). Positions before the token are those of the clean GPU run. Shapes: the device's
 * kernels (SwiftShader: the fused scan), chunks of 4 (the patched layer scans as one chunk, the
 * others in chunks), and the GPU's kernels (64-thread workgroups, chunks of 16); and in the
 * Mamba operation of a hybrid layer (Jamba: Mamba-1, Bamba: Mamba-2).
 */
/// <reference types="@webgpu/types" />
import * as assert from 'node:assert/strict';
import { DEFAULT_TOLERANCE, diffArrays } from '../../src/engine/analysis/compare';
import { editedModel } from '../../src/engine/interventionInputs';
import { layerEdits, parseIntervention, type Intervention, type LayerEdit, type StatePatch } from '../../src/engine/interventions';
import type { InternalName } from '../../src/engine/internals';
import { isLanguageModel, type LoadedModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { normalizedError, type Tensor } from '../../src/engine/tensor';
import { CAPTURE_NAMES } from '../../src/engine/webgpu/layer';
import { WebGpuModel } from '../../src/engine/webgpu/model';
import { createForwardPlan } from '../../src/engine/webgpu/plan';
import { uploadWeights, type GpuWeights } from '../../src/engine/webgpu/weights';
import { NodeFolderStore } from '../../src/node/files';
import { fixture } from './fixtures';
import { forwardOnce, withDawn } from './dawnSuite';

const TOL = DEFAULT_TOLERANCE.fp32;
const NORMALIZED = 1e-5;
const L = 20;
const ids = Array.from({ length: L }, (_, i) => (i * 53 + 7) % 1000);
/** The states captured: before the patches, at them, after them, and after the last token. */
const STATES_AT = [0, 1, 6, 9, 12, -1];
/** The internals compared in the patched layer and after it. */
const COMPARED: readonly InternalName[] = ['hidden_in', 'u', 'delta', 'B', 'C', 'y', 'h', 'conv_state', 'hidden_out'];

/** The largest normalized error seen per model and internal (printed after the tests: the commit's numbers). */
const worst = new Map<string, number>();

function expectClose(got: ArrayLike<number>, ref: Tensor, what: string, key: string): void {
  const d = diffArrays(ref.data as Float64Array, got, ref.shape, TOL);
  assert.equal(d.nonFinite.a + d.nonFinite.b, 0, `${what}: non-finite values`);
  assert.equal(d.firstDivergence, null, `${what}: first element out of tolerance ${JSON.stringify(d.firstDivergence)} (max abs error ${d.maxAbsError})`);
  const e = normalizedError(got, ref.data as Float64Array);
  worst.set(key, Math.max(worst.get(key) ?? 0, e));
  assert.ok(e <= NORMALIZED, `${what}: normalized error ${e}`);
}

const rows = (t: { shape: readonly number[]; data: ArrayLike<number> }, from: number, to: number) => {
  const W = t.data.length / t.shape[0];
  return Float64Array.from(Array.prototype.slice.call(t.data, from * W, to * W));
};

/** Each case: its interventions, the first position they change, and the first layer they change. */
const CASES: readonly { spec: readonly string[]; first: number; layer: number }[] = [
  { spec: ['patch-state layer=1 token=9 from=other'], first: 9, layer: 1 },
  // The conv context reaches before token 0; the knockout's term is emptied by the patch.
  { spec: ['patch-state layer=0 token=1 from=other', 'knockout layer=0 from=0 to=5'], first: 1, layer: 0 },
  // The last token: only its y, the logits there and the states after it change.
  { spec: ['patch-state layer=0 token=19 from=other'], first: 19, layer: 0 },
  { spec: ['patch-state layer=0 token=12 from=other', 'zero-state layer=0 token=6', 'patch-state layer=1 token=6 from=other', 'ablate-write layer=1 tokens=9'], first: 6, layer: 0 },
];

/** The patches' states: the reversed sample's, from its reference run, at the patch's layer and token. */
function editsFor(spec: readonly string[], model: LoadedModel<'float64'>): Map<number, LayerEdit> {
  const list = spec.map(parseIntervention);
  const inputs = new Map<Intervention, StatePatch>();
  for (const i of list) {
    if (i.kind !== 'patch-state') continue;
    const other = referenceForward(model, [...ids].reverse(), { layers: [i.layer], statesAt: [i.token] }).layers[0].tensors;
    inputs.set(i, { token: i.token, h: other.h!.data, conv: other.conv_state!.data });
  }
  assert.ok(isLanguageModel(model));
  return layerEdits(list, L, editedModel(model.config), inputs);
}

describe('patch-state on the native WebGPU forward (Dawn + SwiftShader)', function () {
  this.timeout(300_000);
  let device: GPUDevice, software: boolean;
  withDawn((dawn) => ({ device, software } = dawn));
  after(() => {
    console.log(`      largest normalized errors: ${[...worst].map(([k, e]) => `${k} ${e.toExponential(1)}`).join(', ')}`);
  });

  for (const name of ['mamba1-tiny', 'mamba2-tiny'] as const) {
    describe(name, () => {
      let ref64: LoadedModel<'float64'>;
      let weights: GpuWeights;
      before(async () => {
        ref64 = await loadModelFolder(new NodeFolderStore(fixture(name)), 'float64');
      });
      const gpuWeights = async () => (weights ??= await uploadWeights(device, await loadModelFolder(new NodeFolderStore(fixture(name)), 'float32')));
      after(() => weights?.destroy());

      const shapes: [string, () => boolean, number | undefined, typeof CASES][] = [
        ['device default', () => software, undefined, CASES],
        ['chunks of 4', () => software, 4, CASES],
        ['GPU kernels', () => false, undefined, [CASES[0], CASES[CASES.length - 1]]],
      ];
      for (const [shapeName, asSoftware, chunkLength, cases] of shapes) {
        for (const c of cases) {
          it(`${c.spec.join(' + ')} (${shapeName}): logits and layers ${c.layer}… match the reference; positions before ${c.first} unchanged`, async () => {
            const w = await gpuWeights();
            const edits = editsFor(c.spec, ref64);
            const layers = ref64.layers.map((l) => l.index).filter((i) => i >= c.layer);
            const ref = referenceForward(ref64, ids, { edits, statesAt: STATES_AT });
            const run = (e?: Map<number, LayerEdit>) => forwardOnce(w, { tokens: L, software: asSoftware(), chunkLength, logits: true, statesAt: STATES_AT, capture: { layers, quantities: [...CAPTURE_NAMES] }, ...(e ? { edits: e } : {}) }, ids);
            const [got, clean] = [await run(edits), await run()];
            expectClose(got.logits!.data, ref.logits!, 'logits', `${name} logits`);
            for (const layer of layers) {
              const mine = got.layers.find((l) => l.layer === layer)!.tensors;
              const want = ref.layers[layer].tensors;
              for (const q of COMPARED) expectClose(mine[q]!.data, want[q]!, `layer ${layer} ${q}`, `${name} ${q}`);
            }
            const before = normalizedError(rows(got.logits!, 0, c.first), rows(clean.logits!, 0, c.first));
            assert.ok(c.first === 0 || before <= 1e-6, `logits before position ${c.first} moved: ${before}`);
            const after = normalizedError(rows(got.logits!, c.first, L), rows(clean.logits!, c.first, L));
            assert.ok(after > 1e-4, `the patch changes the logits from position ${c.first} on (${after})`);
          });
        }
      }

      it('WebGpuModel.forward: a second patch at the same token (another plan) matches the reference too', async () => {
        const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(fixture(name)), 'float32'), { software });
        try {
          const first = editsFor(['patch-state layer=1 token=9 from=other'], ref64);
          // The same token, the state halved: a plan keyed by the token alone would rerun the first patch.
          const p = first.get(1)!.patch!;
          const second = new Map([[1, { ...first.get(1)!, patch: { ...p, h: p.h.map((v) => v / 2), conv: p.conv.map((v) => -v) } }]]);
          for (const edits of [first, second]) {
            const ref = referenceForward(ref64, ids, { edits, layers: [1], statesAt: [9] });
            const got = await model.forward(ids, { edits, layers: [1], statesAt: [9], keep: ['y', 'h', 'conv_state'] });
            expectClose(got.logits!.data, ref.logits!, 'logits', `${name} logits`);
            for (const q of ['y', 'h', 'conv_state'] as const) expectClose(got.layers[0].tensors[q]!.data, ref.layers[0].tensors[q]!, `layer 1 ${q}`, `${name} ${q}`);
          }
        } finally {
          model.dispose();
        }
      });
    });
  }

  for (const family of ['jamba', 'bamba'] as const) {
    it(`${family}: a patch-state in a hybrid layer's Mamba operation matches the reference`, async () => {
      const folder = fixture('families', family);
      const m64 = await loadModelFolder(new NodeFolderStore(folder), 'float64');
      const edits = editsFor(['patch-state layer=1 token=9 from=other'], m64);
      const ref = referenceForward(m64, ids, { edits, statesAt: [9, -1] });
      const moved = normalizedError(ref.logits!.data, referenceForward(m64, ids).logits!.data);
      assert.ok(moved > 1e-4, `the patch changes the logits (${moved})`);
      const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(folder), 'float32'), { software });
      try {
        const got = await model.forward(ids, { edits, statesAt: [9, -1] });
        expectClose(got.logits!.data, ref.logits!, 'logits', `${family} logits`);
        for (const l of ref.layers) {
          if (l.layer < 1) continue;
          for (const q of ['y', 'h', 'conv_state', 'hidden_out'] as const) {
            if (l.tensors[q]) expectClose(got.layers[l.layer].tensors[q]!.data, l.tensors[q]!, `layer ${l.layer} ${q}`, `${family} ${q}`);
          }
        }
      } finally {
        model.dispose();
      }
    });
  }

  it('refuses a patch at a token outside the plan', async () => {
    const w = await uploadWeights(device, await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float32'));
    try {
      const h = new Float64Array(256 * 16), conv = new Float64Array(3 * 256);
      for (const token of [-1, L]) {
        const edits = new Map([[0, { scan: {}, patch: { token, h, conv } }]]);
        await assert.rejects(createForwardPlan(w, { tokens: L, software, edits }), /patch-state's token/);
      }
    } finally {
      w.destroy();
    }
  });
});
