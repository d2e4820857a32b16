/**
 * Results that used to be wrong without a word (issue 11, item 4): the seed block's memory
 * estimate, states asked for out of order, and fp32 host kernels that computed in float64.
 */
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { keptValues, type InternalName } from '../../src/engine/internals';
import { loadModelFolder, loadSeedBlockFile } from '../../src/engine/model/load';
import { referenceLayers } from '../../src/engine/reference/forward';
import { causalConvSilu } from '../../src/engine/reference/ops';
import { negExp, selectiveScan, selectiveScanHeads } from '../../src/engine/reference/scan';
import { causalConvSiluF32, hostLoopKernels, selectiveScanF32, selectiveScanHeadsF32 } from '../../src/engine/tfjs/hostLoopScan';
import { tfjsOpsScan } from '../../src/engine/tfjs/scan';
import { normalizedError, type Tensor } from '../../src/engine/tensor';
import { NodeFolderStore } from '../../src/node/files';
import { useNodeBackend } from '../../src/node/tfjsBackends';
import { fixture, openSafetensors } from './fixtures';
import { scanOf } from '../../src/engine/layers/kind';

describe('memory estimate of the seed block (keptValues)', () => {
  it('equals what the seed block keeps, Δ [L, D] included', async () => {
    const block = await loadSeedBlockFile(await openSafetensors(fixture('seed-block', 'block.safetensors')), 'float64');
    const x = await (await openSafetensors(fixture('seed-block', 'io.safetensors'))).readFloat('x', 'float64');
    // The seed block's internals under their InternalName (internals.ts: u = x_in, z = res).
    const kept: Partial<Record<InternalName, Tensor>> = referenceLayers(block, x, { statesAt: [0, -1] }).layers[0].tensors;
    assert.deepEqual(kept.delta?.shape, [x.shape[0], block.config.dModel]);
    const values = Object.values(kept).reduce((sum, t) => sum + (t?.data.length ?? 0), 0);
    assert.equal(keptValues(block.config, { tokens: x.shape[0], layers: 1, states: 2 }), values);
  });
});

/** Layer 0 of the golden Mamba-1 dump: its scan inputs and its states at h_tokens [0, 58, 116, 232]. */
async function goldenLayer0() {
  const model = await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float64');
  const p = scanOf(model.layers[0]);
  const dump = await openSafetensors(fixture('dumps', 'mamba1-sample1.safetensors'));
  const read = (name: string) => dump.readFloat(`layers.0.${name}`, 'float64');
  const h = await read('h');
  const stateSize = h.shape[1] * h.shape[2];
  const hTokens = [...((await dump.readNative('layers.0.h_tokens')).data as Int32Array)];
  const stateAfter = (t: number) => {
    const k = hTokens.indexOf(t);
    return Array.from(h.data.subarray(k * stateSize, (k + 1) * stateSize));
  };
  return { u: await read('u'), delta: await read('delta'), B: await read('B'), C: await read('C'), A: negExp(p.aLog), D: p.D, stateAfter, stateSize };
}

describe('states asked for in any order', function () {
  this.timeout(60_000);
  // Unsorted, with a repeat: row k must be the state after at[k].
  const at = Int32Array.of(116, 0, 232, 116);

  const expectRows = (got: ArrayLike<number>, g: Awaited<ReturnType<typeof goldenLayer0>>, tol: number) => {
    at.forEach((t, k) => {
      const row = Array.from(got).slice(k * g.stateSize, (k + 1) * g.stateSize);
      const e = normalizedError(row, g.stateAfter(t));
      assert.ok(e < tol, `row ${k} (token ${t}): normalized error ${e}`);
    });
  };

  it('the reference scan returns them in the order asked', async () => {
    const g = await goldenLayer0();
    expectRows(selectiveScan(g.u, g.delta, g.A, g.B, g.C, g.D, at).h.data, g, 1e-5);
  });

  for (const [name, scanHeads] of [['reference', selectiveScanHeads], ['float32 host-loop', selectiveScanHeadsF32]] as const) {
    it(`the Mamba-2 ${name} scan returns them in the order asked`, () => {
      // Two heads of head dim 1 sharing one group; the shuffled run's rows are the sorted run's, reordered.
      const L = 6;
      const x = { shape: [L, 2], data: Float32Array.from({ length: 2 * L }, (_, i) => Math.sin(i + 1)) };
      const delta = { shape: [L, 2], data: Float32Array.from({ length: 2 * L }, (_, i) => 0.1 + 0.05 * (i % 3)) };
      const B = { shape: [L, 3], data: Float32Array.from({ length: 3 * L }, (_, i) => Math.cos(i)) };
      const A = { shape: [2], data: Float32Array.of(-0.5, -1.5) };
      const Dskip = { shape: [2], data: Float32Array.of(1, 1) };
      const sorted = scanHeads(x, delta, A, B, B, Dskip, 1, Int32Array.of(1, 4)).h.data;
      const shuffled = scanHeads(x, delta, A, B, B, Dskip, 1, Int32Array.of(4, 1, 4)).h.data;
      const size = sorted.length / 2;
      assert.deepEqual([...shuffled], [...sorted.subarray(size), ...sorted.subarray(0, size), ...sorted.subarray(size)]);
    });
  }

  for (const [name, scan] of [['tfjs-ops prefix scan', tfjsOpsScan], ['cpu/wasm host loop', hostLoopKernels.scan]] as const) {
    it(`the ${name} returns them in the order asked`, async () => {
      await useNodeBackend('cpu');
      const g = await goldenLayer0();
      const t2 = (t: Tensor) => tf.tensor2d(Float32Array.from(t.data as Float64Array), t.shape as [number, number]);
      const inputs = { u: t2(g.u), delta: t2(g.delta), A: t2(g.A), B: t2(g.B), C: t2(g.C), D: tf.tensor1d(Float32Array.from(g.D.data)), statesAt: at };
      const out = scan(inputs);
      expectRows(await out.h!.data(), g, 1e-4);
      for (const t of [out.y, out.h!, inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D]) t.dispose();
    });
  }
});

describe('fp32 host kernels compute in float32', () => {
  const f = Math.fround;
  const rng = (seed: number) => () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296) * 2 - 1;
  const random = (shape: number[], seed: number, map = (v: number) => v): Tensor<Float32Array> => {
    const next = rng(seed);
    return { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => map(next())) };
  };
  const L = 40, D = 8, N = 4;
  const u = random([L, D], 1), delta = random([L, D], 2, (v) => 0.05 + 0.5 * Math.abs(v)), B = random([L, N], 3), C = random([L, N], 4);
  const A = random([D, N], 5, (v) => -0.2 - Math.abs(v)), Dskip = random([D], 6);

  it('the scan is float32 arithmetic, op by op: equal to an independent float32 loop, and off the float64 one', () => {
    // Independent: the recurrence written out with every result rounded to float32.
    const h = new Float32Array(D * N);
    const expected = new Float32Array(L * D);
    for (let t = 0; t < L; t++) {
      for (let d = 0; d < D; d++) {
        const dt = delta.data[t * D + d];
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const i = d * N + n;
          h[i] = f(f(f(Math.exp(f(dt * A.data[i]))) * h[i]) + f(f(dt * u.data[t * D + d]) * B.data[t * N + n]));
          acc = f(acc + f(h[i] * C.data[t * N + n]));
        }
        expected[t * D + d] = f(acc + f(Dskip.data[d] * u.data[t * D + d]));
      }
    }
    const got = selectiveScanF32(u, delta, A, B, C, Dskip, new Int32Array()).y.data;
    assert.deepEqual(got, expected);
    const double = selectiveScan(u, delta, A, B, C, Dskip, new Int32Array()).y.data;
    const drift = Math.max(...double.map((v, i) => Math.abs(v - got[i])));
    assert.ok(drift > 0 && drift < 1e-5, `float32 vs float64 drift ${drift}`);
  });

  it('the conv + SiLU is float32 arithmetic too', () => {
    const K = 4;
    const x = random([L, D], 7), w = random([D, K], 8), b = random([D], 9);
    const expected = new Float32Array(L * D);
    for (let t = 0; t < L; t++) {
      for (let c = 0; c < D; c++) {
        let s = b.data[c];
        for (let k = 0; k < K; k++) if (t - K + 1 + k >= 0) s = f(s + f(w.data[c * K + k] * x.data[(t - K + 1 + k) * D + c]));
        expected[t * D + c] = f(s / f(1 + f(Math.exp(-s))));
      }
    }
    const got = causalConvSiluF32(x, w, b).data;
    assert.deepEqual(got, expected);
    const f64 = (t: Tensor<Float32Array>) => ({ shape: t.shape, data: Float64Array.from(t.data) });
    const double = causalConvSilu(f64(x), f64(w), f64(b)).data;
    assert.ok(double.some((v, i) => v !== got[i]), 'float32 arithmetic rounds differently from float64 rounded at the end');
  });
});
