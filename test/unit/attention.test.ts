import assert from 'node:assert/strict';
import * as path from 'node:path';
import { attentionRollout, hiddenAttention, hiddenAttentionAsync, hiddenAttentionChannel } from '../../src/engine/analysis/attention';
import { CancelledError } from '../../src/engine/errors';
import { layerDecay } from '../../src/engine/analysis/retention';
import { SafetensorsFile } from '../../src/engine/formats/safetensors';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { selectiveScan, selectiveScanHeads } from '../../src/engine/reference/scan';
import { normalizedError, type Tensor } from '../../src/engine/tensor';
import { NodeFileSource, NodeFolderStore } from '../../src/node/files';

const FIXTURES = path.join(__dirname, '..', 'fixtures');

function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

function random(shape: number[], r: () => number, lo: number, hi: number): Tensor<Float64Array> {
  const data = new Float64Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = lo + (hi - lo) * r();
  return { shape, data };
}

describe('hidden attention', () => {
  it('matches layers.i.hidden_attention of the mamba1-tiny fixture dump within 1e-5 (fp64 forward and dumped Δ/B/C)', async () => {
    const model = await loadModelFolder(new NodeFolderStore(path.join(FIXTURES, 'mamba1-tiny')), 'float64');
    const dump = await SafetensorsFile.open(await NodeFileSource.open(path.join(FIXTURES, 'dumps', 'mamba1-sample1.safetensors')));
    const ids = (await dump.readNative('input_ids')).data as Int32Array;
    const forward = referenceForward(model, ids);
    for (const layer of forward.layers) {
      const { A } = layerDecay(model, layer.layer);
      const want = await dump.readFloat(`layers.${layer.layer}.hidden_attention`, 'float64');
      const { delta, B, C } = layer.tensors;
      const fromForward = hiddenAttention(delta!, B!, C!, A);
      assert.deepEqual(fromForward.shape, want.shape);
      const errForward = normalizedError(fromForward.data, want.data);
      assert.ok(errForward < 1e-5, `layer ${layer.layer}: error ${errForward} from the fp64 forward`);
      const [dDelta, dB, dC] = await Promise.all(['delta', 'B', 'C'].map((k) => dump.readFloat(`layers.${layer.layer}.${k}`, 'float64')));
      const errDump = normalizedError(hiddenAttention(dDelta, dB, dC, A).data, want.data);
      assert.ok(errDump < 1e-5, `layer ${layer.layer}: error ${errDump} from the dumped Δ, B, C`);
    }
  });

  it('agrees with a direct transcription of the definition (exp of the Δ sum, per channel)', () => {
    const r = rng(7);
    const L = 9, D = 5, N = 3;
    const delta = random([L, D], r, 0.01, 1.5), B = random([L, N], r, -1, 1), C = random([L, N], r, -1, 1);
    const A = random([D, N], r, -3, -0.1);
    const mean = new Float64Array(L * L);
    for (let d = 0; d < D; d++) {
      const naive = new Float64Array(L * L);
      for (let t = 0; t < L; t++) {
        for (let s = 0; s <= t; s++) {
          let sum = 0;
          for (let k = s + 1; k <= t; k++) sum += delta.data[k * D + d];
          let v = 0;
          for (let n = 0; n < N; n++) v += C.data[t * N + n] * Math.exp(A.data[d * N + n] * sum) * delta.data[s * D + d] * B.data[s * N + n];
          naive[t * L + s] = v;
          mean[t * L + s] += v / D;
        }
      }
      assert.ok(normalizedError(hiddenAttentionChannel(delta, B, C, A, d).data, naive) < 1e-13, `channel ${d}`);
    }
    assert.ok(normalizedError(hiddenAttention(delta, B, C, A).data, mean) < 1e-13);
  });

  it('reproduces the selective scan: y_t[d] = Σ_s α_d[t,s]·u_s[d] + D·u_t[d] (Mamba-1 and Mamba-2 heads with groups)', () => {
    const r = rng(11);
    const L = 12, N = 4;
    // Mamba-1: A [D, N].
    {
      const D = 3;
      const u = random([L, D], r, -1, 1), delta = random([L, D], r, 0.05, 2), B = random([L, N], r, -1, 1), C = random([L, N], r, -1, 1);
      const A = random([D, N], r, -2, -0.2), Dskip = random([D], r, -1, 1);
      const { y } = selectiveScan(u, delta, A, B, C, Dskip, new Int32Array());
      for (let d = 0; d < D; d++) {
        const alpha = hiddenAttentionChannel(delta, B, C, A, d);
        for (let t = 0; t < L; t++) {
          let acc = Dskip.data[d] * u.data[t * D + d];
          for (let s = 0; s <= t; s++) acc += alpha.data[t * L + s] * u.data[s * D + d];
          assert.ok(Math.abs(acc - y.data[t * D + d]) < 1e-12, `d=${d} t=${t}`);
        }
      }
    }
    // Mamba-2: 4 heads of dim 2, 2 groups, A [heads].
    {
      const heads = 4, P = 2, G = 2;
      const x = random([L, heads * P], r, -1, 1), delta = random([L, heads], r, 0.05, 2);
      const B = random([L, G * N], r, -1, 1), C = random([L, G * N], r, -1, 1), A = random([heads], r, -2, -0.2), Dskip = random([heads], r, -1, 1);
      const { y } = selectiveScanHeads(x, delta, A, B, C, Dskip, G, new Int32Array());
      for (let h = 0; h < heads; h++) {
        const alpha = hiddenAttentionChannel(delta, B, C, A, h, G);
        for (let p = 0; p < P; p++) {
          const c = h * P + p;
          for (let t = 0; t < L; t++) {
            let acc = Dskip.data[h] * x.data[t * heads * P + c];
            for (let s = 0; s <= t; s++) acc += alpha.data[t * L + s] * x.data[s * heads * P + c];
            assert.ok(Math.abs(acc - y.data[t * heads * P + c]) < 1e-12, `head ${h} p=${p} t=${t}`);
          }
        }
      }
    }
  });

  it('the interactive (async) form gives the same map, and stops with CancelledError when told to', async () => {
    const r = rng(11);
    const L = 12, D = 20, N = 4;
    const delta = random([L, D], r, 0.01, 1.5), B = random([L, N], r, -1, 1), C = random([L, N], r, -1, 1);
    const A = random([D, N], r, -3, -0.1);
    const sync = hiddenAttention(delta, B, C, A);
    const async = await hiddenAttentionAsync(delta, B, C, A, 1, { channelsPerYield: 3 });
    assert.deepEqual(async.data, sync.data);
    let polls = 0;
    await assert.rejects(hiddenAttentionAsync(delta, B, C, A, 1, { channelsPerYield: 3, shouldStop: () => ++polls === 2 }), CancelledError);
    assert.equal(polls, 2, 'it stopped at the first poll that said so');
  });

  it('rejects mismatched shapes with an InputError', () => {
    const z = (shape: number[]) => ({ shape, data: new Float64Array(shape.reduce((a, b) => a * b, 1)) });
    assert.throws(() => hiddenAttention(z([4, 3]), z([4, 2]), z([5, 2]), z([3, 2])), /C must be \[4, groups·N\]/);
    assert.throws(() => hiddenAttention(z([4, 3]), z([4, 2]), z([4, 2]), z([3, 5])), /A must be \[3, 2\] or \[3\]/);
  });
});

describe('attention rollout', () => {
  it('keeps rows stochastic and causal, and one layer is ½·rownorm(|α|) + ½·I', () => {
    const r = rng(3);
    const L = 6, D = 4, N = 3;
    const layers = [0, 1, 2].map(() => hiddenAttention(random([L, D], r, 0.05, 1), random([L, N], r, -1, 1), random([L, N], r, -1, 1), random([D, N], r, -2, -0.1)));
    const rolled = attentionRollout(layers);
    assert.equal(rolled.length, 3);
    for (const m of rolled) {
      for (let t = 0; t < L; t++) {
        let sum = 0;
        for (let s = 0; s < L; s++) {
          if (s > t) assert.equal(m.data[t * L + s], 0);
          assert.ok(m.data[t * L + s] >= 0);
          sum += m.data[t * L + s];
        }
        assert.ok(Math.abs(sum - 1) < 1e-12, `row ${t} sums to ${sum}`);
      }
    }
    const a = layers[0].data;
    for (let t = 0; t < L; t++) {
      let rowAbs = 0;
      for (let s = 0; s <= t; s++) rowAbs += Math.abs(a[t * L + s]);
      for (let s = 0; s <= t; s++) {
        const want = (0.5 * Math.abs(a[t * L + s])) / rowAbs + (s === t ? 0.5 : 0);
        assert.ok(Math.abs(rolled[0].data[t * L + s] - want) < 1e-14);
      }
    }
  });

  it('multiplies layers in order, later layers on the left: a 3-token example by hand', () => {
    // Layer 0: token 1 attends to token 0, token 2 to token 1. Layer 1: token 2 attends to token 0.
    // Mixed with the residual: Ã_0 = [[1,0,0],[½,½,0],[0,½,½]], Ã_1 = [[1,0,0],[0,1,0],[½,0,½]].
    // Two tokens are not enough: 2×2 lower-triangular stochastic matrices commute.
    const l0 = { shape: [3, 3], data: Float64Array.from([1, 0, 0, -3, 0, 0, 0, 2, 0]) };
    const l1 = { shape: [3, 3], data: Float64Array.from([2, 0, 0, 0, 5, 0, -4, 0, 0]) };
    const [r0, r1] = attentionRollout([l0, l1]);
    assert.deepEqual([...r0.data], [1, 0, 0, 0.5, 0.5, 0, 0, 0.5, 0.5]);
    // Ã_1·Ã_0: row 2 = ½·(row 0 of Ã_0) + ½·(row 2 of Ã_0) = [½, ¼, ¼].
    assert.deepEqual([...r1.data], [1, 0, 0, 0.5, 0.5, 0, 0.5, 0.25, 0.25]);
    // The other order, Ã_0·Ã_1: row 2 = ½·(row 1 of Ã_1) + ½·(row 2 of Ã_1) = [¼, ½, ¼].
    const [, reversed] = attentionRollout([l1, l0]);
    assert.deepEqual([...reversed.data], [1, 0, 0, 0.5, 0.5, 0, 0.25, 0.5, 0.25]);
  });
});
