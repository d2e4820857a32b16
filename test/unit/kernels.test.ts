/**
 * The WGSL kernels (src/engine/kernels) on a real WebGPU implementation: Dawn in Node with
 * SwiftShader, Chromium's CPU Vulkan driver. No adapter is a failure, never a skip: CI installs
 * chromium and libvulkan1 for exactly this.
 *
 * Everything is checked against the float64 reference within mamba_ssm's fp32 tolerance
 * (|got − ref| ≤ 2e-3 + 6e-4·|ref| elementwise, no NaN or ∞ anywhere). Sizes are chosen for
 * SwiftShader on two cores: the long sequences get few channels.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { DEFAULT_TOLERANCE, diffArrays } from '../../src/engine/analysis/compare';
import { SafetensorsFile } from '../../src/engine/formats/safetensors';
import { webgpuConvSilu } from '../../src/engine/kernels/convSilu';
import { defaultChunkLength, webgpuHeadScanChunked, webgpuScan, webgpuScanChunked, webgpuScanFused } from '../../src/engine/kernels/scan';
import { loadModelFolder } from '../../src/engine/model/load';
import { asKind } from '../../src/engine/layers/kind';
import { mamba1 } from '../../src/engine/layers/mamba1';
import type { Mamba1LayerParams } from '../../src/engine/layers/mamba1/params';
import { causalConvSilu, columns, gate, linear, rmsNorm, type F64 } from '../../src/engine/reference/ops';
import { negExp, selectiveScan, selectiveScanHeads } from '../../src/engine/reference/scan';
import type { Tensor } from '../../src/engine/tensor';
import { NodeFileSource, NodeFolderStore } from '../../src/node/files';
import { registerDawnWebGpu, type DawnAdapterInfo } from '../../src/node/webgpu';

const FIXTURES = path.join(__dirname, '../fixtures');

function expectClose(got: ArrayLike<number>, ref: Tensor, what: string): void {
  const d = diffArrays(ref.data as Float64Array, got, ref.shape, DEFAULT_TOLERANCE.fp32);
  assert.equal(d.nonFinite.a + d.nonFinite.b, 0, `${what}: non-finite values at ${JSON.stringify(d.nonFinite.first)}`);
  assert.equal(d.firstDivergence, null, `${what}: first element out of tolerance ${JSON.stringify(d.firstDivergence)} (max abs error ${d.maxAbsError})`);
}

const f32 = (t: Tensor) => tf.tensor(Float32Array.from(t.data as Float64Array), [...t.shape]);
const f64 = (data: ArrayLike<number>, shape: number[]): F64 => ({ shape, data: Float64Array.from(data) });

/** Deterministic inputs: a fixed-seed LCG, so a failure reproduces. */
function random(seed: number) {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  return {
    uniform: (n: number, lo: number, hi: number) => Float64Array.from({ length: n }, () => lo + (hi - lo) * next()),
    /** Log-uniform in [lo, hi]: Δ spans 1e-4 … 50 evenly in orders of magnitude. */
    logUniform: (n: number, lo: number, hi: number) => Float64Array.from({ length: n }, () => lo * Math.pow(hi / lo, next())),
  };
}

interface Mamba1Case {
  readonly u: F64;
  readonly delta: F64;
  readonly A: F64;
  readonly B: F64;
  readonly C: F64;
  readonly D: F64;
  readonly z: F64;
  readonly at: Int32Array;
}

function randomMamba1(L: number, D: number, N: number, seed: number, aLog: [number, number] = [-2, 4]): Mamba1Case {
  const r = random(seed);
  const at = Int32Array.from(new Set([0, Math.floor(L / 3), L - 1])).sort();
  return {
    u: f64(r.uniform(L * D, -2, 2), [L, D]),
    delta: f64(r.logUniform(L * D, 1e-4, 50), [L, D]),
    A: negExp(f64(r.uniform(D * N, aLog[0], aLog[1]), [D, N])),
    B: f64(r.uniform(L * N, -1, 1), [L, N]),
    C: f64(r.uniform(L * N, -1, 1), [L, N]),
    D: f64(r.uniform(D, 0, 2), [D]),
    z: f64(r.uniform(L * D, -8, 8), [L, D]),
    at,
  };
}

/** Runs one WebGPU scan variant on `c` and checks y, the gated y and the states. */
async function checkMamba1(c: Mamba1Case, chunkLen: number | 'fused' | 'default', what: string): Promise<void> {
  const ref = selectiveScan(c.u, c.delta, c.A, c.B, c.C, c.D, c.at);
  const inputs = { u: f32(c.u), delta: f32(c.delta), A: f32(c.A), B: f32(c.B), C: f32(c.C), D: f32(c.D), z: f32(c.z), statesAt: c.at } as const;
  const tensorsBefore = tf.memory().numTensors;
  const typed = inputs as unknown as Parameters<typeof webgpuScan>[0];
  const out = chunkLen === 'fused' ? webgpuScanFused(typed) : chunkLen === 'default' ? webgpuScan(typed) : webgpuScanChunked(typed, chunkLen);
  assert.equal(tf.memory().numTensors, tensorsBefore + 3, `${what}: the scan leaves exactly y, gated and h behind`);
  assert.deepEqual(out.h?.shape, [c.at.length, ...c.A.shape]);
  expectClose(await out.y.data(), ref.y, `${what} y`);
  expectClose(await out.gated!.data(), gate(ref.y, c.z), `${what} gated`);
  expectClose(await out.h!.data(), ref.h, `${what} h`);
  tf.dispose([...Object.values(inputs).filter((x): x is tf.Tensor => x instanceof tf.Tensor), out.y, out.gated!, out.h!]);
}

describe('kernels: WGSL on WebGPU (Dawn + SwiftShader)', function () {
  this.timeout(120_000);
  let adapter: DawnAdapterInfo;
  let previousBackend: string | undefined;

  before(async () => {
    previousBackend = tf.getBackend();
    adapter = await registerDawnWebGpu();
    assert.equal(await tf.setBackend('webgpu'), true, 'tfjs could not start its webgpu backend on the Dawn device');
  });
  after(async () => {
    await tf.setBackend(previousBackend ?? 'cpu');
  });

  it('runs on a real WebGPU adapter', () => {
    assert.ok(adapter.architecture || adapter.vendor, `adapter info: ${JSON.stringify(adapter)}`);
    assert.equal(tf.getBackend(), 'webgpu');
  });

  describe('fixture: mamba1-tiny on sample1 (float32 dump, 233 tokens, D 256, N 16)', () => {
    let model: { layers: Mamba1LayerParams<'float64'>[] };
    let eps: number;
    let dump: SafetensorsFile;
    const layer = async (i: number, key: string) => (await dump.readFloat(`layers.${i}.${key}`, 'float64')) as F64;
    before(async () => {
      const loaded = await loadModelFolder(new NodeFolderStore(path.join(FIXTURES, 'mamba1-tiny')), 'float64');
      const layers = loaded.layers.map((l) => asKind(l, mamba1));
      assert.ok(layers.every((l) => l !== undefined), 'a Mamba-1 model');
      model = { layers: layers.map((l) => l!.params) };
      eps = layers[0]!.config.eps;
      dump = await SafetensorsFile.open(await NodeFileSource.open(path.join(FIXTURES, 'dumps/mamba1-sample1.safetensors')));
    });

    for (const i of [0, 1]) {
      it(`layer ${i}: fused and chunked scans give the reference y, y·silu(z) and the dumped states`, async () => {
        const at = Int32Array.from((await dump.readNative(`layers.${i}.h_tokens`)).data as Int32Array);
        const c: Mamba1Case = {
          u: await layer(i, 'u'), delta: await layer(i, 'delta'), B: await layer(i, 'B'), C: await layer(i, 'C'), z: await layer(i, 'z'),
          A: negExp(model.layers[i].A_log), D: model.layers[i].D, at,
        };
        await checkMamba1(c, 'fused', `layer ${i} fused`);
        await checkMamba1(c, 16, `layer ${i} chunk 16`);
        // And the dump itself (an independent float64 implementation stored as float32).
        const out = webgpuScanChunked({ u: f32(c.u), delta: f32(c.delta), A: f32(c.A), B: f32(c.B), C: f32(c.C), D: f32(c.D), statesAt: at } as unknown as Parameters<typeof webgpuScan>[0], 50);
        expectClose(await out.y.data(), await layer(i, 'y'), `layer ${i} y vs dump`);
        expectClose(await out.h!.data(), await layer(i, 'h'), `layer ${i} h vs dump`);
        tf.dispose([out.y, out.h!]);
      });
    }

    it('conv1d + SiLU turns the layer input into the dumped u', async () => {
      for (const i of [0, 1]) {
        const p = model.layers[i];
        const D = p.D.shape[0];
        const x = columns(linear(rmsNorm(await layer(i, 'hidden_in'), p.norm, eps), p.inProjW, p.inProjB), 0, D);
        const w = p.convW;
        const got = webgpuConvSilu(f32(x) as tf.Tensor2D, f32(w) as tf.Tensor2D, p.convB && (f32(p.convB) as tf.Tensor1D));
        expectClose(await got.data(), causalConvSilu(x, w, p.convB), `layer ${i} conv vs reference`);
        expectClose(await got.data(), await layer(i, 'u'), `layer ${i} conv vs dump`);
      }
    });
  });

  describe('random shapes, Δ from 1e-4 to 50', () => {
    const cases: [L: number, D: number, N: number, chunks: (number | 'fused' | 'default')[]][] = [
      [1, 1536, 16, ['fused', 'default']],
      [7, 1536, 64, ['fused', 3]],
      [64, 1536, 16, ['fused', 16]],
      [64, 1536, 1, ['fused', 'default']],
      [1000, 256, 16, ['fused', 64]],
      [1000, 1536, 1, ['fused', 100]],
      [4096, 48, 16, ['fused', 256]],
      [4096, 12, 64, ['fused', 512]],
    ];
    for (const [L, D, N, chunks] of cases) {
      it(`L ${L}, D ${D}, N ${N}: ${chunks.join(' / ')}`, async () => {
        const c = randomMamba1(L, D, N, L * 7919 + D * 31 + N);
        for (const chunk of chunks) await checkMamba1(c, chunk, `L ${L} D ${D} N ${N} chunk ${chunk}`);
      });
    }

    it('no NaN or ∞ when exp(Δ·A) underflows, A_log is huge (A = −∞ in float32) or z saturates silu', async () => {
      const c = randomMamba1(300, 64, 16, 99, [10, 100]);
      c.delta.data.fill(50, 0, 64 * 10); // the largest Δ at the start …
      c.delta.data.fill(0, 64 * 20, 64 * 21); // … and Δ = 0 once (0·A must not become 0·∞)
      c.z.data.fill(-200, 0, 64);
      c.z.data.fill(200, 64, 128);
      await checkMamba1(c, 'fused', 'extreme fused');
      await checkMamba1(c, 32, 'extreme chunk 32');
    });
  });

  describe('Mamba-2 head scan (scalar A per head, B/C per group)', () => {
    const cases: [L: number, heads: number, P: number, groups: number, N: number][] = [
      [233, 8, 32, 1, 32], // mamba2-tiny's shape
      [100, 6, 4, 2, 5],
      [1, 4, 2, 4, 16],
    ];
    for (const [L, H, P, G, N] of cases) {
      it(`L ${L}, ${H} heads × ${P}, ${G} groups, N ${N}: fused and chunked`, async () => {
        const r = random(L + H + P + G + N);
        const x = f64(r.uniform(L * H * P, -2, 2), [L, H * P]);
        const delta = f64(r.logUniform(L * H, 1e-4, 50), [L, H]);
        const A = negExp(f64(r.uniform(H, -2, 6), [H]));
        const B = f64(r.uniform(L * G * N, -1, 1), [L, G * N]);
        const C = f64(r.uniform(L * G * N, -1, 1), [L, G * N]);
        const D = f64(r.uniform(H, 0, 2), [H]);
        const at = Int32Array.from(new Set([0, L - 1]));
        const ref = selectiveScanHeads(x, delta, A, B, C, D, G, at);
        for (const chunk of [L, 9]) {
          const out = webgpuHeadScanChunked({ x: f32(x), delta: f32(delta), A: f32(A), B: f32(B), C: f32(C), D: f32(D), groups: G, statesAt: at } as unknown as Parameters<typeof webgpuHeadScanChunked>[0], chunk);
          assert.deepEqual(out.h?.shape, [at.length, H, P, N]);
          expectClose(await out.y.data(), ref.y, `heads chunk ${chunk} y`);
          expectClose(await out.h!.data(), ref.h, `heads chunk ${chunk} h`);
        }
      });
    }
  });

  describe('contract', () => {
    const small = () => {
      const c = randomMamba1(8, 4, 4, 5);
      return { u: f32(c.u), delta: f32(c.delta), A: f32(c.A), B: f32(c.B), C: f32(c.C), D: f32(c.D), statesAt: new Int32Array() } as unknown as Parameters<typeof webgpuScan>[0];
    };
    it('no z and no states: only y comes back', () => {
      const out = webgpuScan(small());
      assert.deepEqual(Object.keys(out), ['y']);
      assert.deepEqual(out.y.shape, [8, 4]);
    });
    it('rejects unsorted, repeated or out-of-range state positions and mismatched shapes', () => {
      assert.throws(() => webgpuScan({ ...small(), statesAt: Int32Array.from([3, 1]) }), /strictly increasing/);
      assert.throws(() => webgpuScan({ ...small(), statesAt: Int32Array.from([2, 2]) }), /strictly increasing/);
      assert.throws(() => webgpuScan({ ...small(), statesAt: Int32Array.from([8]) }), /outside a 8-token sequence/);
      assert.throws(() => webgpuScan({ ...small(), B: tf.zeros([8, 5]) as tf.Tensor2D }), /B has shape \[8, 5\], expected \[8, 4\]/);
    });
    it('refuses to run on another backend', async () => {
      await tf.setBackend('cpu');
      try {
        assert.throws(() => webgpuScan(small()), /need the tfjs 'webgpu' backend, but the active backend is 'cpu'/);
      } finally {
        await tf.setBackend('webgpu');
      }
    });
    it('chunks only on hardware GPUs with too few channels to fill them', () => {
      assert.equal(defaultChunkLength(2048, 1536, true), 2048);
      assert.equal(defaultChunkLength(2048, 1 << 17, false), 2048);
      const len = defaultChunkLength(2048, 1536, false);
      assert.ok(len >= 16 && len < 2048, `chunk length ${len}`);
    });
  });
});
