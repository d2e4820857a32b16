import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compare, describeDrift } from '../../src/cli/commands/compare';
import { compareStores, comparisonJson, DEFAULT_TOLERANCE, diffArrays, driftByPosition, type DumpComparison } from '../../src/engine/analysis/compare';
import { encodeNpy } from '../../src/engine/formats/npy';
import { encodeSafetensors } from '../../src/engine/formats/safetensors';
import { normalizedError } from '../../src/engine/tensor';
import { editedCopy, GOLDEN, GOLDEN_BF16, lcg, memoryDump, openDump } from './numerics.fixtures';

const FP32 = DEFAULT_TOLERANCE.fp32;
const LONG_GOLDEN = path.join(__dirname, '..', 'fixtures', 'long', 'golden-32k.safetensors');

function divergent(c: DumpComparison): string[] {
  return c.tensors.filter((t) => t.firstDivergence).map((t) => t.name);
}

/** Mean over positions t < L − 1 of −log softmax(logits_t)[ids_{t+1}], softmax written out (max-shifted). */
function meanNextTokenLoss(logits: Float64Array, ids: Int32Array, V: number): number {
  let sum = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    const max = Math.max(...row);
    let z = 0;
    for (const v of row) z += Math.exp(v - max);
    sum += -(row[ids[t + 1]] - max - Math.log(z));
  }
  return sum / (ids.length - 1);
}

describe('numerics: compare', () => {
  it('diffArrays: no divergence on identical inputs; the finite-only normalized error equals tensor.ts', () => {
    const r = lcg(7);
    const a = Float64Array.from({ length: 600 }, () => r() * 4 - 2);
    const same = diffArrays(a, a.slice(), [20, 30], FP32);
    assert.equal(same.firstDivergence, null);
    assert.equal(same.maxAbsError, 0);
    assert.equal(same.nonFinite.a + same.nonFinite.b, 0);
    const b = a.map((v) => v * (1 + 1e-4 * (r() - 0.5)));
    const d = diffArrays(a, b, [20, 30], FP32);
    assert.equal(d.normalizedError, normalizedError(b, a));
    assert.equal(d.firstDivergence, null, 'a 5e-5 relative change is inside fp32 tolerance');
    assert.equal(Math.max(...d.tokenProfile), d.maxAbsError);
  });

  it('diffArrays: the first divergence is the first element, row-major, past atol + rtol·|a|', () => {
    const a = new Float64Array(12).fill(1);
    const b = a.slice();
    b[7] = 1 + FP32.atol + FP32.rtol * 1 + 1e-6; // row 1, column 3 of [3, 4]
    b[10] = 1 + FP32.atol; // inside the tolerance
    const d = diffArrays(a, b, [3, 4], FP32);
    assert.deepEqual(d.firstDivergence?.index, [1, 3]);
    assert.equal(d.firstDivergence?.token, 1);
    assert.deepEqual([...d.tokenProfile].map((v) => v > 0), [false, true, true]);
  });

  it('diffArrays: non-finite values count as divergences and are located in each file', () => {
    const a = new Float64Array(8);
    const b = new Float64Array(8);
    a[5] = Infinity;
    b[2] = NaN;
    b[5] = NaN;
    const d = diffArrays(a, b, [4, 2], FP32);
    assert.deepEqual(d.firstDivergence?.index, [1, 0]);
    assert.deepEqual(d.nonFinite, { a: 1, b: 2, first: [{ tensor: 'b', index: [1, 0] }, { tensor: 'a', index: [2, 1] }, { tensor: 'b', index: [2, 1] }] });
    assert.equal(d.maxAbsError, 0, 'errors are over finite pairs; the NaNs are reported as non-finite');
  });

  it('drift by position: a row with a non-finite value makes its bucket NaN, the highest, not a small error', () => {
    const a = Float64Array.from({ length: 1200 * 2 }, (_, i) => i / 7);
    const b = a.map((v, i) => v + (i < 2 * 600 ? 1e-6 : 1e-3));
    b[2 * 700 + 1] = Infinity;
    const d = diffArrays(a, b, [1200, 2], FP32);
    assert.ok(Number.isNaN(d.tokenProfile[700]) && Math.abs(d.tokenProfile[701] - 1e-3) < 1e-9);
    const drift = driftByPosition(d.tokenProfile)!;
    assert.deepEqual(drift.map((x) => x.start), [0, 512, 1024]);
    assert.ok(Math.abs(drift[0].maxAbsError - 1e-6) < 1e-9 && Number.isNaN(drift[1].maxAbsError) && Math.abs(drift[2].maxAbsError - 1e-3) < 1e-9);
    assert.match(describeDrift('x', drift), /^x 1\.00e-6 at 0 → 1\.00e-3 at 1024 \(lowest 1\.00e-6 at 0, highest NaN at 512; 3 buckets\)$/);
  });

  it('the golden dump compared with itself: nothing diverges', async () => {
    const golden = await openDump(GOLDEN);
    const c = await compareStores(golden, await openDump(GOLDEN));
    assert.deepEqual(divergent(c), []);
    assert.equal(c.firstDivergentLayer, null);
    assert.equal(c.tensors.length, golden.names().length);
    assert.ok(c.tensors.every((t) => t.maxAbsError === 0 && t.nonFinite.a === 0 && t.nonFinite.b === 0));
  });

  it('done-when: one changed element of layers.1.y and one NaN Δ in layer 0 are named at the right element and token, and nothing else', async () => {
    const golden = await openDump(GOLDEN);
    const [L, D] = golden.info('layers.1.y')!.shape;
    const bytes = await editedCopy(golden, {
      'layers.1.y': (y) => (y[37 * D + 101] += 0.5),
      'layers.0.delta': (delta) => (delta[120 * D + 7] = NaN),
    });
    const c = await compareStores(golden, await memoryDump('perturbed', bytes));
    assert.deepEqual(divergent(c), ['layers.0.delta', 'layers.1.y']);
    const delta = c.tensors.find((t) => t.name === 'layers.0.delta')!;
    assert.deepEqual(delta.firstDivergence?.index, [120, 7]);
    assert.equal(delta.firstDivergence?.token, 120);
    assert.deepEqual(delta.nonFinite, { a: 0, b: 1, first: [{ tensor: 'b', index: [120, 7] }] });
    const y = c.tensors.find((t) => t.name === 'layers.1.y')!;
    assert.deepEqual(y.firstDivergence?.index, [37, 101]);
    assert.equal(y.firstDivergence?.token, 37);
    assert.ok(Math.abs(y.maxAbsError - 0.5) < 1e-6);
    assert.equal(y.tokenProfile.findIndex((v) => v > 0), 37);
    assert.equal(y.tokenProfile.filter((v) => v > 0).length, 1);
    assert.equal(c.firstDivergentLayer, 0);
    assert.ok(L > 120);
    // The JSON contract, exactly.
    const json = JSON.parse(JSON.stringify(comparisonJson(c)));
    assert.deepEqual(Object.keys(json), ['tensors', 'firstDivergentLayer']);
    assert.deepEqual(Object.keys(json.tensors[0]), ['name', 'shape', 'maxAbsError', 'normalizedError', 'firstDivergence', 'nonFinite']);
    const yJson = json.tensors.find((t: { name: string }) => t.name === 'layers.1.y');
    assert.deepEqual(yJson.firstDivergence, { index: [37, 101], token: 37 });
    assert.deepEqual(Object.keys(yJson.nonFinite), ['a', 'b', 'first']);
  });

  it('a state is located by the token h_tokens names, not its index', async () => {
    const golden = await openDump(GOLDEN);
    const [, D, N] = golden.info('layers.0.h')!.shape;
    const tokens = (await golden.readNative('layers.0.h_tokens')).data;
    const bytes = await editedCopy(golden, { 'layers.0.h': (h) => (h[(2 * D + 5) * N + 3] += 1) });
    const c = await compareStores(golden, await memoryDump('h', bytes));
    const h = c.tensors.find((t) => t.name === 'layers.0.h')!;
    assert.deepEqual(h.firstDivergence?.index, [2, 5, 3]);
    assert.equal(h.firstDivergence?.token, Number(tokens[2]));
  });

  it('tolerance comes from the looser dtype: stored F16/BF16 or the dump metadata "dtype"; --rtol/--atol override', async () => {
    const a = { name: 'x', tensor: { shape: [2], data: Float32Array.of(1, 1) } };
    const b = { name: 'x', tensor: { shape: [2], data: Float32Array.of(1, 1.02) } };
    const fp32 = await compareStores(await memoryDump('a', encodeSafetensors([a])), await memoryDump('b', encodeSafetensors([b])));
    assert.deepEqual(fp32.tensors[0].tolerance, FP32);
    assert.ok(fp32.tensors[0].firstDivergence);
    const bf16 = await compareStores(await memoryDump('a', encodeSafetensors([a])), await memoryDump('b', encodeSafetensors([b], { dtype: 'bfloat16' })));
    assert.deepEqual(bf16.tensors[0].tolerance, DEFAULT_TOLERANCE.bf16);
    assert.equal(bf16.tensors[0].firstDivergence, null);
    const f16 = { name: 'x', tensor: { shape: [2], data: Uint16Array.of(0x3c00, 0x3c00) } };
    const bytes = encodeSafetensors([f16]);
    // encodeSafetensors writes U16 for a Uint16Array: relabel the header as F16 (same length).
    const text = new TextDecoder().decode(bytes).replace('"U16"', '"F16"');
    const asF16 = await compareStores(await memoryDump('f16', new TextEncoder().encode(text)), await memoryDump('b', encodeSafetensors([b])));
    assert.deepEqual(asF16.tensors[0].tolerance, DEFAULT_TOLERANCE.fp16);
    const strict = await compareStores(await memoryDump('a', encodeSafetensors([a])), await memoryDump('b', encodeSafetensors([b], { dtype: 'bfloat16' })), { rtol: 0, atol: 1e-3 });
    assert.deepEqual(strict.tensors[0].tolerance, { rtol: 0, atol: 1e-3 });
    assert.deepEqual(strict.tensors[0].firstDivergence?.index, [1]);
  });

  it('lists tensors in one file only and shape mismatches as notes; a mismatch makes its layer divergent', async () => {
    const t = (name: string, shape: number[]) => ({ name, tensor: { shape, data: new Float32Array(shape.reduce((x, y) => x * y, 1)) } });
    const a = await memoryDump('a', encodeSafetensors([t('layers.0.u', [3, 2]), t('layers.1.y', [3, 2]), t('only_a', [1])]));
    const b = await memoryDump('b', encodeSafetensors([t('layers.0.u', [3, 2]), t('layers.1.y', [3, 4]), t('only_b', [1])]));
    const c = await compareStores(a, b);
    assert.deepEqual(c.onlyInA, ['only_a']);
    assert.deepEqual(c.onlyInB, ['only_b']);
    assert.deepEqual(c.shapeMismatches, [{ name: 'layers.1.y', a: [3, 2], b: [3, 4] }]);
    assert.deepEqual(c.tensors.map((x) => x.name), ['layers.0.u']);
    assert.equal(c.firstDivergentLayer, 1);
  });

  it("pairs one file's hf_logits / layers.i.hf_out with the other's logits / layers.i.out", async () => {
    const t = (name: string) => ({ name, tensor: { shape: [2], data: Float32Array.of(1, 2) } });
    const a = await memoryDump('a', encodeSafetensors([t('hf_logits'), t('layers.0.hf_out'), t('layers.0.y')]));
    const b = await memoryDump('b', encodeSafetensors([t('logits'), t('layers.0.out'), t('layers.0.y')]));
    const c = await compareStores(a, b);
    assert.deepEqual(c.tensors.map((x) => x.name), ['layers.0.y', 'layers.0.out', 'logits']);
    assert.deepEqual(c.renamed, [{ name: 'layers.0.out', a: 'layers.0.hf_out', b: 'layers.0.out' }, { name: 'logits', a: 'hf_logits', b: 'logits' }]);
    assert.deepEqual([c.onlyInA, c.onlyInB], [[], []]);
  });

  it('compares two .npy files, each one tensor named after its file, with each other', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'numerics-npy-'));
    try {
      await fs.writeFile(path.join(dir, 'ref.npy'), encodeNpy({ shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) }));
      await fs.writeFile(path.join(dir, 'kernel.npy'), encodeNpy({ shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 7) }));
      const out: string[] = [];
      assert.equal(await compare.run([path.join(dir, 'ref.npy'), path.join(dir, 'kernel.npy'), '--json'], { out: (s) => out.push(s), err: () => {} }), 0);
      const json = JSON.parse(out[0]);
      assert.deepEqual(json.tensors.map((t: { name: string }) => t.name), ['ref']);
      assert.deepEqual(json.tensors[0].firstDivergence, { index: [1, 2], token: 1 });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('worked example: the bf16 run of mamba1-tiny against the fp32 dump first diverges in layer 1', async () => {
    const [fp32, bf16] = [await openDump(GOLDEN), await openDump(GOLDEN_BF16)];
    const c = await compareStores(fp32, bf16);
    assert.deepEqual(c.tensors.map((t) => t.name), ['input_ids', 'layers.0.hf_out', 'layers.1.hf_out', 'hf_logits']);
    assert.deepEqual(c.tensors[1].tolerance, DEFAULT_TOLERANCE.bf16, 'the metadata dtype bfloat16 sets the tolerance');
    // Every figure again from the raw tensors: max|a − b|, max|a − b| / max|a|, and the first
    // element past mamba_ssm's bf16 tolerance |a − b| > 5e-2 + 3e-2·|a|, row-major.
    for (const t of c.tensors.slice(1)) {
      const a = (await fp32.readFloat(t.name, 'float64')).data;
      const b = (await bf16.readFloat(t.name, 'float64')).data;
      let maxDiff = 0, maxA = 0, first = -1;
      for (let i = 0; i < a.length; i++) {
        const d = Math.abs(a[i] - b[i]);
        maxDiff = Math.max(maxDiff, d);
        maxA = Math.max(maxA, Math.abs(a[i]));
        if (first < 0 && d > 5e-2 + 3e-2 * Math.abs(a[i])) first = i;
      }
      const columns = t.shape[1];
      assert.equal(t.maxAbsError, maxDiff, t.name);
      assert.ok(Math.abs(t.normalizedError - maxDiff / maxA) < 1e-15, t.name);
      assert.deepEqual(t.firstDivergence?.index ?? null, first < 0 ? null : [Math.floor(first / columns), first % columns], t.name);
    }
    // What the README quotes.
    assert.equal(c.firstDivergentLayer, 1);
    assert.deepEqual(c.tensors[2].firstDivergence?.index, [12, 101]);
    assert.deepEqual(c.tensors[3].firstDivergence?.index, [11, 80]);
    assert.equal((100 * c.tensors[3].normalizedError).toFixed(2), '0.86', 'logits 0.86 % off');
    const ids = (await fp32.readNative('input_ids')).data as Int32Array;
    const [fp32Logits, bf16Logits] = [await fp32.readFloat('hf_logits', 'float64'), await bf16.readFloat('hf_logits', 'float64')];
    const top1 = (logits: Float64Array, t: number, V: number) => {
      const row = logits.subarray(t * V, (t + 1) * V);
      return row.indexOf(Math.max(...row));
    };
    const V = fp32Logits.shape[1];
    const changed = [...ids.keys()].filter((t) => top1(fp32Logits.data, t, V) !== top1(bf16Logits.data, t, V));
    assert.deepEqual(changed, [125, 207, 213], 'top-1 changes at 3 of 233 tokens');
    assert.equal(ids.length, 233);
    assert.equal(meanNextTokenLoss(fp32Logits.data, ids, V).toFixed(4), '3.0895');
    assert.equal(meanNextTokenLoss(bf16Logits.data, ids, V).toFixed(4), '3.0917');
  });

  describe('compare command', () => {
    let dir: string;
    before(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'numerics-compare-'));
    });
    after(async () => {
      await fs.rm(dir, { recursive: true, force: true });
    });

    const run = async (argv: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await compare.run(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
      return { code, out, err };
    };

    it('--json prints exactly the contract on stdout, notes on stderr, and exits 0 when the files diverge', async () => {
      const golden = await openDump(GOLDEN);
      const D = golden.info('layers.1.y')!.shape[1];
      const file = path.join(dir, 'perturbed.safetensors');
      await fs.writeFile(file, await editedCopy(golden, { 'layers.1.y': (y) => (y[3 * D + 4] = NaN) }));
      const { code, out, err } = await run([GOLDEN, file, '--json']);
      assert.equal(code, 0);
      assert.equal(out.length, 1);
      const json = JSON.parse(out[0]);
      assert.equal(json.firstDivergentLayer, 1);
      const y = json.tensors.find((t: { name: string }) => t.name === 'layers.1.y');
      assert.deepEqual(y.firstDivergence, { index: [3, 4], token: 3 });
      assert.deepEqual(y.nonFinite, { a: 0, b: 1, first: [{ tensor: 'b', index: [3, 4] }] });
      assert.deepEqual(err, []);
    });

    it('text output says whether the files diverge, names the token and lists one-sided tensors', async () => {
      const same = await run([GOLDEN, GOLDEN]);
      assert.equal(same.code, 0);
      assert.match(same.out.at(-1)!, /^no divergence: all 24 shared tensors within tolerance$/);
      const bf16 = await run([GOLDEN, GOLDEN_BF16, '--rtol', '0.03']);
      assert.equal(bf16.code, 0);
      const text = bf16.out.join('\n');
      assert.match(text, /layers\.1\.hf_out .*\[12, 101\] token 12 /);
      assert.match(text, /first divergent layer: 1/);
      assert.match(text, /only in a \(not compared\): layers\.0\.hidden_in/);
    });

    it('drift against position: transformers\' fp32 run of golden-32k against its float64 run, per 512 tokens, the logits at their positions', async () => {
      const golden = await openDump(LONG_GOLDEN);
      const read = async (k: string) => (await golden.readFloat(k, 'float64')).data;
      const positions = (await golden.readNative('positions')).data as Int32Array;
      const [nll64, nll32, logits64, logits32] = [await read('nll_f64'), await read('nll_f32'), await read('logits_f64'), await read('logits_f32')];
      const V = logits64.length / positions.length;
      const file = (name: string, nll: Float64Array, logits: Float64Array) => {
        const f = path.join(dir, name);
        return fs.writeFile(f, encodeSafetensors([
          { name: 'positions', tensor: { shape: [positions.length], data: positions } },
          { name: 'logits', tensor: { shape: [positions.length, V], data: Float32Array.from(logits) } },
          { name: 'nll', tensor: { shape: [nll.length], data: nll } },
        ])).then(() => f);
      };
      const [a, b] = [await file('f64.safetensors', nll64, logits64), await file('f32.safetensors', nll32, logits32)];
      const { code, out } = await run([a, b]);
      assert.equal(code, 0);
      // Expected, by hand: the largest |a − b| of the rows whose position falls in each 512-token bucket.
      const buckets = (rows: number, rowError: (r: number) => number, positionOf: (r: number) => number) => {
        const worst = new Map<number, number>();
        for (let r = 0; r < rows; r++) worst.set(Math.floor(positionOf(r) / 512), Math.max(worst.get(Math.floor(positionOf(r) / 512)) ?? 0, rowError(r)));
        return [...worst.entries()].sort((x, y) => x[0] - y[0]).map(([k, e]) => ({ start: k * 512, maxAbsError: e }));
      };
      const f32 = (x: number) => Math.fround(x);
      const nllWant = buckets(nll64.length, (r) => Math.abs(nll64[r] - nll32[r]), (r) => r);
      const logitsWant = buckets(positions.length, (r) => {
        let m = 0;
        for (let v = 0; v < V; v++) m = Math.max(m, Math.abs(f32(logits64[r * V + v]) - f32(logits32[r * V + v])));
        return m;
      }, (r) => positions[r]);
      assert.equal(nllWant.length, 64);
      const at = out.indexOf('drift against position (max |a−b| per 512 tokens):');
      assert.ok(at >= 0, out.join('\n'));
      assert.deepEqual(out.slice(at + 1, at + 3).sort(), [`  ${describeDrift('logits', logitsWant)}`, `  ${describeDrift('nll', nllWant)}`].sort());
      assert.match(out[at + 1] + out[at + 2], /; 64 buckets\)/);
    });

    it('bad input is exit-1 material (InputError), bad usage a UsageError', async () => {
      const junk = path.join(dir, 'junk.bin');
      await fs.writeFile(junk, 'not a tensor file at all');
      await assert.rejects(run([GOLDEN, junk]), { name: 'MambaScopeError' });
      await assert.rejects(run([GOLDEN, path.join(dir, 'missing.safetensors')]), { name: 'MambaScopeError' });
      await assert.rejects(run([GOLDEN]), { name: 'UsageError' });
      await assert.rejects(run([GOLDEN, GOLDEN, '--rtol', '-1']), { name: 'UsageError' });
    });
  });
});
