/**
 * The selective scan's WGSL (src/engine/webgpu/scanShaders.ts, bound by selectiveScan.ts) on a
 * real WebGPU implementation: Dawn in Node with SwiftShader, Chromium's CPU Vulkan driver. No
 * adapter is a failure, never a skip: the set-up installs chromium and libvulkan1 for this.
 *
 * Fused (one chunk) and chunked (chunk ends, carry, output) against the float64 reference
 * within mamba_ssm's fp32 tolerance (|got − ref| ≤ 2e-3 + 6e-4·|ref| elementwise, no NaN or ∞),
 * y, the gated y and the states. Sizes are chosen for SwiftShader on two cores.
 */
/// <reference types="@webgpu/types" />
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { DEFAULT_TOLERANCE, diffArrays } from '../../src/engine/analysis/compare';
import { SafetensorsFile } from '../../src/engine/formats/safetensors';
import { asKind } from '../../src/engine/layers/kind';
import { mamba1 } from '../../src/engine/layers/mamba1';
import type { Mamba1LayerParams } from '../../src/engine/layers/mamba1/params';
import { loadModelFolder } from '../../src/engine/model/load';
import { gate, type F64 } from '../../src/engine/reference/ops';
import { negExp, selectiveScan, selectiveScanHeads } from '../../src/engine/reference/scan';
import type { Tensor } from '../../src/engine/tensor';
import { KernelCache, record } from '../../src/engine/webgpu/kernel';
import type { ScanGeometry } from '../../src/engine/webgpu/scanShaders';
import { defaultChunkLength, scanChunking, scanDispatches, scanScratch } from '../../src/engine/webgpu/selectiveScan';
import { NodeFileSource, NodeFolderStore } from '../../src/node/files';
import { createDawnDevice, type DawnAdapterInfo } from '../../src/node/webgpu';

const FIXTURES = path.join(__dirname, '../fixtures');

function expectClose(got: ArrayLike<number>, ref: Tensor, what: string): void {
  const d = diffArrays(ref.data as Float64Array, got, ref.shape, DEFAULT_TOLERANCE.fp32);
  assert.equal(d.nonFinite.a + d.nonFinite.b, 0, `${what}: non-finite values at ${JSON.stringify(d.nonFinite.first)}`);
  assert.equal(d.firstDivergence, null, `${what}: first element out of tolerance ${JSON.stringify(d.firstDivergence)} (max abs error ${d.maxAbsError})`);
}

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

interface ScanInputs {
  readonly u: F64;
  readonly delta: F64;
  /** −exp(A_log): [D, N] (Mamba-1) or [heads]. */
  readonly A: F64;
  readonly B: F64;
  readonly C: F64;
  readonly D: F64;
  readonly z?: F64;
  /** Sorted, distinct. */
  readonly at: Int32Array;
}

/** Runs the scan's dispatches on `device` with `chunkLen` tokens per chunk; returns y, the gated y (with z) and the states. */
async function runScan(device: GPUDevice, software: boolean, g: ScanGeometry, c: ScanInputs, chunkLen: number | 'device default'): Promise<{ y: Float32Array; gated?: Float32Array; h: Float32Array }> {
  const { L, channels, N } = g;
  const owned: GPUBuffer[] = [];
  const buffer = (data: ArrayLike<number> | number) => {
    const n = typeof data === 'number' ? data : data.length;
    const b = device.createBuffer({ size: 4 * Math.max(4, n), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    if (typeof data !== 'number') new Float32Array(b.getMappedRange()).set(data);
    b.unmap();
    owned.push(b);
    return b;
  };
  try {
    const slots = new Float32Array(L).fill(-1);
    c.at.forEach((t, k) => (slots[t] = k));
    const params = buffer([...c.A.data, ...c.D.data, ...slots]);
    const T = c.at.length;
    const outputs = (c.z ? 2 : 1) * L * channels;
    const out = buffer(outputs + T * channels * N);
    const chunking = scanChunking(L, chunkLen === 'device default' ? defaultChunkLength(L, channels, software) : chunkLen);
    const scratch = scanScratch(g, chunking);
    const dispatches = scanDispatches(new KernelCache(device), 'scan', g, chunking, {
      u: { buffer: buffer(c.u.data) }, delta: { buffer: buffer(c.delta.data) }, params: { buffer: params },
      B: { buffer: buffer(c.B.data) }, C: { buffer: buffer(c.C.data) }, ...(c.z ? { z: { buffer: buffer(c.z.data) } } : {}),
      states: T > 0, out: { buffer: out },
      ...(scratch.ends ? { ends: { buffer: buffer(scratch.ends) }, carried: { buffer: buffer(scratch.carried) } } : {}),
    });
    assert.equal(dispatches.length, chunking.chunks > 1 ? 3 : 1);
    const read = device.createBuffer({ size: out.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    owned.push(read);
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    record(pass, dispatches);
    pass.end();
    encoder.copyBufferToBuffer(out, 0, read, 0, out.size);
    device.queue.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const all = new Float32Array(read.getMappedRange().slice(0));
    read.unmap();
    return {
      y: all.subarray(0, L * channels),
      ...(c.z ? { gated: all.subarray(L * channels, 2 * L * channels) } : {}),
      h: all.subarray(outputs, outputs + T * channels * N),
    };
  } finally {
    owned.forEach((b) => b.destroy());
  }
}

function randomMamba1(L: number, D: number, N: number, seed: number, aLog: [number, number] = [-2, 4]): ScanInputs {
  const r = random(seed);
  return {
    u: f64(r.uniform(L * D, -2, 2), [L, D]),
    delta: f64(r.logUniform(L * D, 1e-4, 50), [L, D]),
    A: negExp(f64(r.uniform(D * N, aLog[0], aLog[1]), [D, N])),
    B: f64(r.uniform(L * N, -1, 1), [L, N]),
    C: f64(r.uniform(L * N, -1, 1), [L, N]),
    D: f64(r.uniform(D, 0, 2), [D]),
    z: f64(r.uniform(L * D, -8, 8), [L, D]),
    at: Int32Array.from(new Set([0, Math.floor(L / 3), L - 1])).sort(),
  };
}

const mamba1Geometry = (c: ScanInputs): ScanGeometry => ({ L: c.u.shape[0], channels: c.u.shape[1], N: c.A.shape[1], heads: c.u.shape[1], headDim: 1, groups: 1, aPerState: true });

describe('selective scan WGSL on WebGPU (Dawn + SwiftShader)', function () {
  this.timeout(120_000);
  let device: GPUDevice;
  let info: DawnAdapterInfo;
  before(async () => {
    ({ device, info } = await createDawnDevice());
  });
  after(() => device?.destroy());

  /** One scan variant on `c`: y, the gated y and the states against the float64 reference. */
  const checkMamba1 = async (c: ScanInputs, chunk: number | 'device default', what: string) => {
    const ref = selectiveScan(c.u, c.delta, c.A, c.B, c.C, c.D, c.at);
    const out = await runScan(device, info.software, mamba1Geometry(c), c, chunk);
    expectClose(out.y, ref.y, `${what} y`);
    expectClose(out.gated!, gate(ref.y, c.z!), `${what} gated`);
    expectClose(out.h, ref.h, `${what} h`);
  };

  it('runs on a real WebGPU adapter', () => {
    assert.ok(info.architecture || info.vendor, `adapter info: ${JSON.stringify(info)}`);
  });

  describe('fixture: mamba1-tiny on sample1 (float32 dump, 233 tokens, D 256, N 16)', () => {
    let layers: Mamba1LayerParams<'float64'>[];
    let dump: SafetensorsFile;
    const layer = async (i: number, key: string) => (await dump.readFloat(`layers.${i}.${key}`, 'float64')) as F64;
    before(async () => {
      const loaded = await loadModelFolder(new NodeFolderStore(path.join(FIXTURES, 'mamba1-tiny')), 'float64');
      layers = loaded.layers.map((l) => asKind(l, mamba1)!.params);
      dump = await SafetensorsFile.open(await NodeFileSource.open(path.join(FIXTURES, 'dumps/mamba1-sample1.safetensors')));
    });

    for (const i of [0, 1]) {
      it(`layer ${i}: fused and chunked scans give the reference y, y·silu(z) and the dumped states`, async () => {
        const at = Int32Array.from((await dump.readNative(`layers.${i}.h_tokens`)).data as Int32Array);
        const c: ScanInputs = {
          u: await layer(i, 'u'), delta: await layer(i, 'delta'), B: await layer(i, 'B'), C: await layer(i, 'C'), z: await layer(i, 'z'),
          A: negExp(layers[i].A_log), D: layers[i].D, at,
        };
        await checkMamba1(c, 233, `layer ${i} fused`);
        await checkMamba1(c, 16, `layer ${i} chunk 16`);
        // And the dump itself (an independent float64 implementation stored as float32).
        const out = await runScan(device, info.software, mamba1Geometry(c), c, 50);
        expectClose(out.y, await layer(i, 'y'), `layer ${i} y vs dump`);
        expectClose(out.h, await layer(i, 'h'), `layer ${i} h vs dump`);
      });
    }
  });

  describe('random shapes, Δ from 1e-4 to 50', () => {
    const cases: [L: number, D: number, N: number, chunks: (number | 'device default')[]][] = [
      [1, 1536, 16, [1, 'device default']],
      [7, 1536, 64, [7, 3]],
      [64, 1536, 16, [64, 16]],
      [64, 1536, 1, [64, 'device default']],
      [1000, 256, 16, [1000, 64]],
      [1000, 1536, 1, [1000, 100]],
      [4096, 48, 16, [4096, 256]],
      [4096, 12, 64, [4096, 512]],
    ];
    for (const [L, D, N, chunks] of cases) {
      it(`L ${L}, D ${D}, N ${N}: ${chunks.join(' / ')} tokens per chunk`, async () => {
        const c = randomMamba1(L, D, N, L * 7919 + D * 31 + N);
        for (const chunk of chunks) await checkMamba1(c, chunk, `L ${L} D ${D} N ${N} chunk ${chunk}`);
      });
    }

    it('no NaN or ∞ when exp(Δ·A) underflows, A_log is huge (A = −∞ in float32) or z saturates silu', async () => {
      const c = randomMamba1(300, 64, 16, 99, [10, 100]);
      c.delta.data.fill(50, 0, 64 * 10); // the largest Δ at the start …
      c.delta.data.fill(0, 64 * 20, 64 * 21); // … and Δ = 0 once (0·A must not become 0·∞)
      c.z!.data.fill(-200, 0, 64);
      c.z!.data.fill(200, 64, 128);
      await checkMamba1(c, 300, 'extreme fused');
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
        const c: ScanInputs = {
          u: f64(r.uniform(L * H * P, -2, 2), [L, H * P]),
          delta: f64(r.logUniform(L * H, 1e-4, 50), [L, H]),
          A: negExp(f64(r.uniform(H, -2, 6), [H])),
          B: f64(r.uniform(L * G * N, -1, 1), [L, G * N]),
          C: f64(r.uniform(L * G * N, -1, 1), [L, G * N]),
          D: f64(r.uniform(H, 0, 2), [H]),
          at: Int32Array.from(new Set([0, L - 1])),
        };
        const ref = selectiveScanHeads(c.u, c.delta, c.A, c.B, c.C, c.D, G, c.at);
        const g: ScanGeometry = { L, channels: H * P, N, heads: H, headDim: P, groups: G, aPerState: false };
        for (const chunk of [L, 9]) {
          const out = await runScan(device, info.software, g, c, chunk);
          expectClose(out.y, ref.y, `heads chunk ${chunk} y`);
          expectClose(out.h, ref.h, `heads chunk ${chunk} h`);
        }
      });
    }
  });

  it('chunks only on hardware GPUs with too few channels to fill them', () => {
    assert.equal(defaultChunkLength(2048, 1536, true), 2048);
    assert.equal(defaultChunkLength(2048, 1 << 17, false), 2048);
    const len = defaultChunkLength(2048, 1536, false);
    assert.ok(len >= 16 && len < 2048, `chunk length ${len}`);
  });
});
