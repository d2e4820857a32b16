import assert from 'node:assert/strict';
import { decayHistograms } from '../../src/engine/analysis/decayHistogram';
import { errorMap } from '../../src/engine/analysis/errorMap';
import { findNonFinite } from '../../src/engine/analysis/nonFinite';
import { sortForward } from '../../src/engine/analysis/forwardOrder';
import { editedCopy, GOLDEN, memoryDump, openDump } from './numerics.fixtures';

describe('numerics: panel data', () => {
  it('errorMap is tokens × channels, the max over the states of h, NaN where a value is not finite', () => {
    const a = { shape: [2, 3, 2], data: new Float32Array(12) };
    const b = { shape: [2, 3, 2], data: Float32Array.from({ length: 12 }, (_, i) => i / 10) };
    b.data[9] = NaN; // token 1, channel 1, state 1
    const m = errorMap(a, b);
    assert.deepEqual([m.tokens, m.channels], [2, 3]);
    assert.deepEqual([...m.data].map((v) => (Number.isNaN(v) ? 'NaN' : Number(v.toFixed(2)))), [0.1, 0.3, 0.5, 0.7, 'NaN', 1.1]);
    assert.equal(Number(m.max.toFixed(2)), 1.1);
    assert.throws(() => errorMap(a, { shape: [2, 6], data: new Float32Array(12) }), /shapes/);
    const vector = errorMap({ shape: [3], data: Float32Array.of(1, 2, 3) }, { shape: [3], data: Float32Array.of(1, 2, 4) });
    assert.deepEqual([vector.tokens, vector.channels, [...vector.data]], [3, 1, [0, 0, 1]]);
  });

  it('forward order: inputs, layers in order (hidden_in … hidden_out, others after), then logits', () => {
    const keys = ['logits', 'layers.10.u', 'layers.2.hf_out', 'layers.2.hidden_out', 'layers.2.y', 'layers.2.hidden_in', 'input_ids', 'hf_logits', 'layers.2.delta'];
    assert.deepEqual(sortForward(keys), ['input_ids', 'layers.2.hidden_in', 'layers.2.delta', 'layers.2.y', 'layers.2.hidden_out', 'layers.2.hf_out', 'layers.10.u', 'logits', 'hf_logits']);
  });

  it('the NaN/Inf finder names the first layer and quantity in forward order, not file order', async () => {
    const golden = await openDump(GOLDEN);
    assert.deepEqual(await findNonFinite(golden), { first: null, tensors: [] });
    const D = golden.info('layers.0.y')!.shape[1];
    const [, Dh, N] = golden.info('layers.1.h')!.shape;
    const dump = await memoryDump(
      'broken',
      await editedCopy(golden, {
        'layers.1.u': (u) => (u[3 * D + 1] = NaN),
        'layers.0.y': (y) => {
          y[40 * D + 2] = Infinity;
          y[41 * D] = NaN;
        },
        'layers.1.h': (h) => (h[(1 * Dh + 0) * N + 0] = -Infinity),
        hf_logits: (l) => l.fill(NaN),
      }),
    );
    const report = await findNonFinite(dump);
    assert.equal(report.first?.tensor, 'layers.0.y');
    assert.equal(report.first?.layer, 0);
    assert.equal(report.first?.quantity, 'y');
    assert.deepEqual(report.first?.index, [40, 2]);
    assert.equal(report.first?.token, 40);
    assert.equal(report.first?.value, Infinity);
    assert.deepEqual([report.first?.count, report.first?.nanCount], [2, 1]);
    assert.deepEqual(report.tensors.map((t) => t.tensor), ['layers.0.y', 'layers.1.u', 'layers.1.h', 'hf_logits']);
    const h = report.tensors.find((t) => t.quantity === 'h')!;
    assert.equal(h.token, 58, 'a state is named by its token (h_tokens[1])');
  });

  it('exp(Δ·A) histograms: decays that round to 1 in bf16 but not fp32, and that underflow to 0 in fp16/fp32', () => {
    // Δ·A = −1e-3: exp is 1 − 1e-3; bf16's spacing below 1 is 2^-8, so it rounds to 1; fp16's 2^-11 keeps it.
    // −20: exp is 2e-9, under fp16's smallest subnormal (6e-8). −120: 8e-53, under fp32's (1.4e-45) and
    // bf16's (9e-41). −0.5 is fine everywhere; Δ = 0 gives exactly 1, which is not a rounding.
    const delta = { shape: [5, 1], data: Float64Array.of(1e-3, 20, 120, 0.5, 0) };
    const A = { shape: [1, 1], data: Float64Array.of(-1) };
    const h = decayHistograms(delta, A, 4);
    assert.equal(h.total, 5);
    assert.equal(h.exactOnes, 1);
    assert.equal(h.edges.length, 5);
    assert.ok(Math.abs(h.edges[0] - -3) < 1e-12 && Math.abs(h.edges[4] - Math.log10(120)) < 1e-12);
    const by = Object.fromEntries(h.histograms.map((x) => [x.precision, x]));
    assert.deepEqual([by.fp64.roundsToOne, by.fp64.underflowsToZero], [0, 0]);
    assert.deepEqual([by.fp32.roundsToOne, by.fp32.underflowsToZero], [0, 1]);
    assert.deepEqual([by.fp16.roundsToOne, by.fp16.underflowsToZero], [0, 2]);
    assert.deepEqual([by.bf16.roundsToOne, by.bf16.underflowsToZero], [1, 1]);
    for (const x of h.histograms) {
      assert.equal(x.counts.reduce((s, c) => s + c, 0) + x.roundsToOne + x.underflowsToZero + h.exactOnes, h.total, x.precision);
    }
    // Mamba-2: one A per head.
    const heads = decayHistograms({ shape: [2, 2], data: Float64Array.of(0.1, 0.2, 0.3, 0.4) }, { shape: [2], data: Float64Array.of(-1, -2) });
    assert.equal(heads.total, 4);
  });
});
