/**
 * Interventions in the float64 reference (src/engine/interventions.ts), each against a direct
 * recomputation of its definition from the clean run's own tensors (the plain scan, no edit, or
 * loops written out here), on mamba1-tiny and mamba2-tiny, within 1e-9 normalized.
 */
import assert from 'node:assert/strict';
import { layerEdits, parseIntervention, type Intervention } from '../../src/engine/interventions';
import type { LoadedModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import type { F64 } from '../../src/engine/reference/ops';
import { negExp, selectiveScan, selectiveScanHeads } from '../../src/engine/reference/scan';
import { normalizedError } from '../../src/engine/tensor';

type Tensor = { readonly shape: readonly number[]; readonly data: Float64Array };
import { NodeFolderStore } from '../../src/node/files';
import { fixture } from './fixtures';
import { scanOf } from '../../src/engine/layers/kind';

const close = (got: Tensor, want: Tensor | Float64Array, what: string) => {
  const w = want instanceof Float64Array ? want : (want.data as Float64Array);
  const e = normalizedError(got.data, w);
  assert.ok(e <= 1e-9, `${what}: normalized error ${e}`);
};
const rows = (t: Tensor, from: number, to: number) => {
  const W = t.data.length / t.shape[0];
  return Float64Array.from(t.data.subarray(from * W, to * W));
};

for (const name of ['mamba1-tiny', 'mamba2-tiny'] as const) {
  describe(`interventions on ${name} (float64 reference)`, () => {
    const L = 20;
    const ids = Array.from({ length: L }, (_, i) => (i * 53 + 7) % 1000);
    let model: LoadedModel<'float64'>;
    let clean: ReturnType<typeof referenceForward>;
    const mamba2 = name === 'mamba2-tiny';
    before(async () => {
      model = await loadModelFolder(new NodeFolderStore(fixture(name)), 'float64');
      clean = referenceForward(model, ids);
    });
    const run = (...texts: string[]) => {
      const list = texts.map(parseIntervention);
      const deltaColumns = clean.layers[0].tensors.delta!.shape[1];
      const dModel = clean.layers[0].tensors.hidden_in!.shape[1];
      return referenceForward(model, ids, { edits: layerEdits(list, L, { layers: model.layers.length, deltaColumns, dModel }, new Map(list.filter((i) => i.kind === 'steer').map((i) => [i, steerVector(dModel)] as [Intervention, Float64Array]))) });
    };
    const steerVector = (H: number) => Float64Array.from({ length: H }, (_, j) => Math.sin(j));
    /** The plain scan (no edit) of layer ℓ on the given inputs, Mamba-1 or Mamba-2. */
    const scan = (layer: number, t: { u: F64; delta: F64; B: F64; C: F64 }, h0?: Float64Array) => {
      const v = scanOf(model.layers[layer]);
      const A = negExp(v.aLog as F64);
      return mamba2 ? selectiveScanHeads(t.u, t.delta, A, t.B, t.C, v.D as F64, v.groups, new Int32Array(0), h0) : selectiveScan(t.u, t.delta, A, t.B, t.C, v.D as F64, new Int32Array(0), h0);
    };
    const inputs = (layer: number) => {
      const x = clean.layers[layer].tensors;
      return { u: x.u as F64, delta: x.delta as F64, B: x.B as F64, C: x.C as F64 };
    };

    it('ablate-write layer=1 tokens=7: layer 0 and everything before token 7 unchanged; layer 1 y is the scan with B_7 = 0', () => {
      const r = run('ablate-write layer=1 tokens=7');
      for (const q of ['u', 'delta', 'y', 'hidden_out'] as const) close(r.layers[0].tensors[q]!, clean.layers[0].tensors[q]!, `layer 0 ${q}`);
      const x = inputs(1);
      const B = { shape: x.B.shape, data: Float64Array.from(x.B.data) };
      B.data.fill(0, 7 * B.shape[1], 8 * B.shape[1]);
      close(r.layers[1].tensors.y!, scan(1, { ...x, B }).y, 'layer 1 y');
      close({ shape: [7], data: rows(r.logits!, 0, 7) }, rows(clean.logits!, 0, 7), 'logits before token 7');
      assert.ok(normalizedError(rows(r.logits!, 7, L), rows(clean.logits!, 7, L)) > 1e-9, 'the logits from token 7 on change');
    });

    it('zero-state layer=1 token=9: y_9 = D·u_9, and the tokens after scan from a zero state', () => {
      const r = run('zero-state layer=1 token=9');
      const x = inputs(1);
      const y = r.layers[1].tensors.y!;
      close({ shape: [9], data: rows(y, 0, 9) }, rows(clean.layers[1].tensors.y!, 0, 9), 'y before token 9');
      const v = scanOf(model.layers[1]);
      const D = x.u.shape[1], P = D / v.D.data.length;
      const skip = Float64Array.from({ length: D }, (_, c) => v.D.data[Math.floor(c / P)] * x.u.data[9 * D + c]);
      close({ shape: [1, D], data: rows(y, 9, 10) }, skip, 'y_9');
      const tail = (t: F64) => ({ shape: [L - 10, t.shape[1]], data: rows(t, 10, L) });
      close({ shape: [L - 10, D], data: rows(y, 10, L) }, scan(1, { u: tail(x.u), delta: tail(x.delta), B: tail(x.B), C: tail(x.C) }).y, 'y after token 9');
    });

    it('scale-delta layer=0 tokens=3:6 factor=2.5 channels=0,2: Δ scaled there, and the scan of the scaled Δ', () => {
      const r = run('scale-delta layer=0 tokens=3:6 factor=2.5 channels=0,2');
      const x = inputs(0);
      const W = x.delta.shape[1];
      const delta = { shape: x.delta.shape, data: Float64Array.from(x.delta.data, (v, i) => (Math.floor(i / W) >= 3 && Math.floor(i / W) < 6 && (i % W === 0 || i % W === 2) ? v * 2.5 : v)) };
      close(r.layers[0].tensors.delta!, delta, 'Δ');
      close(r.layers[0].tensors.y!, scan(0, { ...x, delta }).y, 'y');
    });

    it('knockout layer=1 from=4 to=10: y_t less token 4\'s term C_t·(∏ Ā_k)·Δ_4·u_4·B_4 for t ≥ 10, written out', () => {
      const r = run('knockout layer=1 from=4 to=10');
      const x = inputs(1);
      const v = scanOf(model.layers[1]);
      const A = negExp(v.aLog as F64).data;
      const [, D] = x.u.shape;
      const heads = x.delta.shape[1], P = D / heads, GN = x.B.shape[1], N = GN / v.groups;
      const want = Float64Array.from(clean.layers[1].tensors.y!.data);
      for (let t = 10; t < L; t++) {
        for (let c = 0; c < D; c++) {
          const k = Math.floor(c / P); // Mamba-1: P = 1, one head per channel
          const col = mamba2 ? k : c;
          const off = mamba2 ? Math.floor(k / (heads / v.groups)) * N : 0;
          for (let n = 0; n < N; n++) {
            const a = mamba2 ? A[k] : A[c * N + n];
            let term = x.delta.data[4 * heads + col] * x.u.data[4 * D + c] * x.B.data[4 * GN + off + n];
            for (let q = 5; q <= t; q++) term *= Math.exp(x.delta.data[q * heads + col] * a);
            want[t * D + c] -= x.C.data[t * GN + off + n] * term;
          }
        }
      }
      close(r.layers[1].tensors.y!, want, 'y');
    });

    it('steer layer=1 tokens=2,3 scale=0.5: the stream entering layer 1 moves by 0.5·v at tokens 2 and 3 only', () => {
      const r = run('steer layer=1 tokens=2,3 vector=v.safetensors:v scale=0.5');
      const H = clean.layers[1].tensors.hidden_in!.shape[1];
      const v = steerVector(H);
      const want = Float64Array.from(clean.layers[1].tensors.hidden_in!.data, (x, i) => (Math.floor(i / H) === 2 || Math.floor(i / H) === 3 ? x + 0.5 * v[i % H] : x));
      close(r.layers[1].tensors.hidden_in!, want, 'hidden_in');
      close({ shape: [2], data: rows(r.logits!, 0, 2) }, rows(clean.logits!, 0, 2), 'logits before token 2');
    });
  });
}

describe('intervention specs', () => {
  it('parse, and bad ones give one line naming the intervention and the problem', () => {
    assert.deepEqual(parseIntervention('ablate-write layer=1 tokens=3,5:7,-1'), { kind: 'ablate-write', layer: 1, tokens: [3, 5, 6, -1] });
    assert.deepEqual(parseIntervention('knockout layer=0 from=2 to=9'), { kind: 'knockout', layer: 0, from: 2, to: 9 });
    for (const [text, message] of [
      ['erase layer=1', /"erase" is not an intervention \(ablate-write, scale-delta, zero-state, knockout, steer, patch-state, ablate-path\)/],
      ['ablate-write layer=1 token=3', /ablate-write takes layer, tokens, not token/],
      ['ablate-write tokens=3', /layer must be an integer/],
      ['scale-delta layer=0 tokens=1 factor=abc', /needs factor=<a finite number>/],
      ['ablate-write layer=0 tokens=5:5', /the range 5:5 is empty/],
      ['steer layer=0 tokens=1 vector=nofile', /needs vector=FILE:KEY/],
    ] as const) assert.throws(() => parseIntervention(text), message, text);
    const m = { layers: 2, deltaColumns: 8, dModel: 4 };
    assert.throws(() => layerEdits([parseIntervention('zero-state layer=4 token=1')], 10, m), /layer 4 is outside the model's 2 layers/);
    assert.throws(() => layerEdits([parseIntervention('zero-state layer=1 token=10')], 10, m), /token 10 is outside the 10-token sample/);
    assert.throws(() => layerEdits([parseIntervention('knockout layer=1 from=5 to=3')], 10, m), /to=3 comes before from=5/);
    assert.throws(() => layerEdits([parseIntervention('scale-delta layer=1 tokens=1 factor=2 channels=8')], 10, m), /channel 8 is outside Δ's 8 columns/);
    const steer = parseIntervention('steer layer=0 tokens=1 vector=f.safetensors:dir');
    assert.throws(() => layerEdits([steer], 10, m, new Map([[steer, new Float64Array(3)]])), /the vector dir has 3 values; the stream has d_model 4/);
  });
});
