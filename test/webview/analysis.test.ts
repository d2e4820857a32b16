/**
 * The webview's analyses in Node (no browser): states recomputed by the checkpointed scan against
 * the states the fixture dump recorded and against the float64 reference scan, the gate
 * quantities against their definitions for Mamba-1 and Mamba-2 layouts, top-k, channel orders,
 * and the CSV/.npy export encodings.
 */
import assert from 'node:assert/strict';
import { openTensorFile } from '../../src/engine/formats/tensorFile';
import { SafetensorsFile } from '../../src/engine/formats/safetensors';
import { MemorySource } from '../../src/engine/io';
import { loadModelFolder } from '../../src/engine/model/load';
import { selectiveScanHeads } from '../../src/engine/reference/scan';
import type { Tensor } from '../../src/engine/tensor';
import { NodeFileSource, NodeFolderStore } from '../../src/node/files';
import { layerInputs } from '../../webview/analysis/layerInputs';
import { columnStats, forgetFactor, orderByDescending, writeMagnitude } from '../../webview/analysis/metrics';
import { probabilityOf, topK } from '../../src/engine/predictions';
import { StateScanner } from '../../webview/analysis/stateScan';
import { exportView, sliceToCsv } from '../../webview/export';
import type { ExportSlice } from '../../webview/views/view';
import { SAMPLE1_DUMP, TINY_MODEL } from './messages';
import { scanOf } from '../../src/engine/layers/kind';

/** Deterministic values in [lo, hi) (xorshift), so failures reproduce. */
function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return lo + ((s % 1_000_003) / 1_000_003) * (hi - lo);
  });
}

function maxRelError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return diff / scale;
}

const f32 = (data: Float32Array, shape: number[]): Tensor<Float32Array> => ({ shape, data });
const f64 = (t: Tensor<Float32Array>) => ({ shape: t.shape, data: Float64Array.from(t.data) });

describe('webview analyses', () => {
  describe('states recomputed from Δ, u, B and A', () => {
    it('match the states the fixture dump recorded (mamba1-tiny on sample1), at every recorded token', async () => {
      const model = await loadModelFolder(new NodeFolderStore(TINY_MODEL), 'float32');
      assert.equal(model.config.arch, 'mamba1');
      const dump = await SafetensorsFile.open(await NodeFileSource.open(SAMPLE1_DUMP));
      const layers = model.layers;
      let checked = 0;
      for (let layer = 0; layer < layers.length; layer++) {
        const read = (name: string) => dump.readFloat(`layers.${layer}.${name}`, 'float32');
        const A = scanOf(layers[layer]).aLog;
        const x = layerInputs(await read('delta'), await read('u'), await read('B'), { A: { shape: A.shape, data: A.data.map((v) => -Math.exp(v)) }, groups: 1 });
        const scanner = new StateScanner(x);
        const h = await read('h');
        const at = (await dump.readNative(`layers.${layer}.h_tokens`)).data as Int32Array;
        const norms = await scanner.norms();
        const size = x.D * x.N;
        for (let i = 0; i < at.length; i++) {
          const recorded = h.data.subarray(i * size, (i + 1) * size);
          const mine = await scanner.stateAt(at[i]);
          assert.ok(maxRelError(mine, recorded) < 1e-4, `layer ${layer} token ${at[i]}: ${maxRelError(mine, recorded)}`);
          const norm = Math.hypot(...recorded);
          assert.ok(Math.abs(norms[at[i]] - norm) < 1e-4 * norm, `‖h‖ at ${at[i]}`);
          checked++;
        }
      }
      assert.ok(checked >= 4, `only ${checked} recorded states`);
    });

    it('equal the float64 reference scan at every token, and a channel trace equals those states (Mamba-2 layout, groups)', async () => {
      const L = 150, heads = 4, P = 3, G = 2, N = 5, D = heads * P;
      const delta = f32(random(L * heads, 1, 0.01, 0.9), [L, heads]);
      const u = f32(random(L * D, 2), [L, D]);
      const B = f32(random(L * G * N, 3), [L, G * N]);
      const A = f32(random(heads, 4, -2, -0.1), [heads]);
      const x = layerInputs(delta, u, B, { A, groups: G });
      const scanner = new StateScanner(x);
      // Checkpoints every 32 tokens: probe before, at and after checkpoint boundaries.
      const at = Int32Array.from([0, 1, 31, 32, 33, 95, 96, 149]);
      const ref = selectiveScanHeads(f64(u), f64(delta), f64(A), f64(B), f64(B), { shape: [heads], data: new Float64Array(heads) }, G, at);
      for (let i = 0; i < at.length; i++) {
        const want = ref.h.data.subarray(i * D * N, (i + 1) * D * N);
        assert.ok(maxRelError(await scanner.stateAt(at[i]), want) < 1e-6, `token ${at[i]}`);
      }
      const d = 7;
      const trace = scanner.channelTrace(d);
      for (let i = 0; i < at.length; i++) {
        for (let n = 0; n < N; n++) assert.ok(Math.abs(trace[at[i] * N + n] - ref.h.data[i * D * N + d * N + n]) < 1e-6);
      }
      await assert.rejects(scanner.stateAt(L), RangeError);
      // The pass with the forget factor beside (a long run's chunk): the same norms, and forgetFactor's values from its exponentials.
      const forget = new Float32Array(L * D);
      assert.deepEqual(await new StateScanner(x).norms({}, forget), await scanner.norms());
      assert.deepEqual(forget, await forgetFactor(x));
    });

    it('need the model’s A: without it the scanner refuses with a message that says so', () => {
      const x = layerInputs(f32(random(8, 1, 0, 1), [4, 2]), f32(random(8, 2), [4, 2]), f32(random(12, 3), [4, 3]), null);
      assert.throws(() => new StateScanner(x), /load the model/);
    });
  });

  describe('gate quantities', () => {
    it('forget factor and write magnitude follow their definitions (Mamba-1: Δ and A per channel)', async () => {
      const L = 9, D = 6, N = 4;
      const delta = f32(random(L * D, 5, 0, 2), [L, D]), u = f32(random(L * D, 6), [L, D]), B = f32(random(L * N, 7), [L, N]);
      const A = f32(random(D * N, 8, -3, -0.01), [D, N]);
      const x = layerInputs(delta, u, B, { A, groups: 1 });
      const forget = await forgetFactor(x, { rowsPerChunk: 2 });
      const write = writeMagnitude(x);
      for (let t = 0; t < L; t++) {
        const bNorm = Math.hypot(...B.data.subarray(t * N, (t + 1) * N));
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (let n = 0; n < N; n++) s += Math.exp(delta.data[t * D + d] * A.data[d * N + n]);
          assert.ok(Math.abs(forget[t * D + d] - s / N) < 1e-6);
          assert.ok(Math.abs(write[t * D + d] - Math.abs(delta.data[t * D + d] * u.data[t * D + d]) * bNorm) < 1e-5);
        }
      }
    });

    it('Mamba-2: each channel uses its head’s Δ and A and its group’s B', async () => {
      const L = 5, heads = 4, P = 2, G = 2, N = 3, D = heads * P;
      const delta = f32(random(L * heads, 9, 0, 1), [L, heads]), u = f32(random(L * D, 10), [L, D]), B = f32(random(L * G * N, 11), [L, G * N]);
      const A = f32(random(heads, 12, -2, -0.5), [heads]);
      const x = layerInputs(delta, u, B, { A, groups: G });
      const forget = await forgetFactor(x);
      const write = writeMagnitude(x);
      const t = 3, d = 5; // head 2, group 1
      const dt = delta.data[t * heads + 2];
      assert.ok(Math.abs(forget[t * D + d] - Math.exp(dt * A.data[2])) < 1e-6);
      const bNorm = Math.hypot(...B.data.subarray(t * G * N + N, t * G * N + 2 * N));
      assert.ok(Math.abs(write[t * D + d] - Math.abs(dt * u.data[t * D + d]) * bNorm) < 1e-6);
    });

    it('channel orders sort by mean and variance, high first, ties by index', () => {
      const m = Float32Array.from([1, 5, 5, 2, 3, 5, 5, 2, 5]); // 3 rows × 3 columns
      const { mean, variance } = columnStats(m, 3, 3);
      assert.deepEqual([...mean].map((v) => +v.toFixed(4)), [2.6667, 3.3333, 5]);
      assert.deepEqual([...orderByDescending(mean)], [2, 1, 0]);
      assert.deepEqual([...orderByDescending(Float64Array.from([1, 3, 3, 0]))], [1, 2, 0, 3]);
      assert.equal(variance[2], 0);
      assert.deepEqual([...orderByDescending(variance)], [0, 1, 2]); // 2.89, 1.56, 0
    });
  });

  describe('next token', () => {
    it('top-k is the k largest logits in order, with softmax probabilities; rank of the actual token', () => {
      const V = 257;
      const logits = f32(random(2 * V, 13, -5, 5), [2, V]);
      const row = [...logits.data.subarray(V, 2 * V)];
      const order = row.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]);
      const top = topK(logits, 1, 7);
      assert.deepEqual(top.map((p) => p.id), order.slice(0, 7).map(([, i]) => i));
      const Z = row.reduce((s, v) => s + Math.exp(v), 0);
      for (const p of top) assert.ok(Math.abs(p.prob - Math.exp(row[p.id]) / Z) < 1e-9);
      assert.deepEqual(probabilityOf(logits, 1, order[3][1]).rank, 3);
    });
  });

  describe('exports', () => {
    const slice: ExportSlice = {
      name: 'layer0-delta-tokens0-1',
      tensor: f32(Float32Array.from([0.1, -2.5e-7, 3, Math.fround(1 / 3)]), [2, 2]),
      rowLabels: ['0 ‘a,b’', '1 ‘"q"’'],
      columnLabels: ['channel 4', 'channel 9'],
    };

    it('CSV: labelled header and rows, quoted labels, values that round-trip float32', () => {
      const lines = sliceToCsv(slice).trimEnd().split('\n');
      assert.equal(lines[0], ',channel 4,channel 9');
      assert.equal(lines[1], '"0 ‘a,b’",0.100000001,-2.49999999e-7');
      assert.equal(lines[2], '"1 ‘""q""’",3,0.333333343');
      const back = lines.slice(1).flatMap((l) => l.split(',').slice(-2).map(Number));
      assert.deepEqual(Float32Array.from(back), slice.tensor.data);
    });

    it('.npy: the slice read back by the project’s npy reader is identical', async () => {
      const data = await exportView({ element: null as never, update: () => undefined, slice: () => slice }, 'heatmap', 'npy', 'layer0');
      assert.equal(data.suggestedName, 'layer0-delta-tokens0-1.npy');
      const store = await openTensorFile(new MemorySource('export.npy', new Uint8Array(data.bytes)));
      const t = await store.readFloat(store.names()[0], 'float32');
      assert.deepEqual(t.shape, [2, 2]);
      assert.deepEqual(t.data, slice.tensor.data);
    });
  });
});
