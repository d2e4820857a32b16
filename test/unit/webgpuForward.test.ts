/**
 * The native WebGPU forward (src/engine/webgpu) on Dawn + SwiftShader, against the float64
 * reference forward (the oracle) within mamba_ssm's fp32 tolerance (|got − ref| ≤ 2e-3 +
 * 6e-4·|ref| elementwise, nothing non-finite); the normalized error (max |err| / max |ref|) of
 * each comparison is printed. No adapter is a failure, never a skip. Sizes are kept small:
 * SwiftShader runs on the CPU.
 */
/// <reference types="@webgpu/types" />
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diffArrays } from '../../src/engine/analysis/compare';
import type { InternalName } from '../../src/engine/internals';
import type { LoadedModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { predictionsFromLogits, type Predictions } from '../../src/engine/predictions';
import { referenceForward } from '../../src/engine/reference/forward';
import { linear, map, softplus, type F64 } from '../../src/engine/reference/ops';
import { nativeForward } from '../../src/engine/webgpu/forward';
import { KernelCache, record } from '../../src/engine/webgpu/kernel';
import { CAPTURE_NAMES } from '../../src/engine/webgpu/layer';
import { WebGpuModel } from '../../src/engine/webgpu/model';
import { f16ToFloat, floatToF16 } from '../../src/engine/formats/dtypes';
import type { Param } from '../../src/engine/model/params';
import { matmulDispatches, type MatmulTile } from '../../src/engine/webgpu/matmul';
import { createForwardPlan } from '../../src/engine/webgpu/plan';
import { uploadWeights, type GpuWeights } from '../../src/engine/webgpu/weights';
import { NodeFolderStore } from '../../src/node/files';
import { packHalves, storedFormat } from '../../src/engine/webgpu/weightFormat';
import { openCheckpoint } from '../../src/engine/formats/checkpoint';
import { expectClose, expectPredictions, TOL } from './expectPredictions';
import { fixture } from './fixtures';
import { withDawn } from './dawnSuite';

function sampleIds(n: number): number[] {
  const json = JSON.parse(fs.readFileSync(fixture('samples', 'input_ids.json'), 'utf8')) as { input_ids: Record<string, number[]> };
  return json.input_ids['sample1.py'].slice(0, n);
}

/** Counts what a device creates, to show a reused plan creates nothing. */
function countCreations(device: GPUDevice): { counts: Record<string, number>; restore(): void } {
  const counts: Record<string, number> = {};
  const names = ['createComputePipeline', 'createComputePipelineAsync', 'createShaderModule', 'createBindGroup', 'createBuffer'] as const;
  const originals = names.map((n) => [n, device[n]] as const);
  for (const [name, original] of originals) {
    counts[name] = 0;
    Object.defineProperty(device, name, {
      configurable: true,
      value: (...args: unknown[]) => {
        counts[name]++;
        return (original as (...a: unknown[]) => unknown).apply(device, args);
      },
    });
  }
  return { counts, restore: () => names.forEach((n) => delete (device as unknown as Record<string, unknown>)[n]) };
}

async function readBuffer(device: GPUDevice, source: GPUBuffer, bytes: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(source, 0, staging, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

describe('native WebGPU forward (Dawn + SwiftShader)', function () {
  this.timeout(300_000);
  let device: GPUDevice, software: boolean;
  withDawn((dawn) => ({ device, software } = dawn));
  const report: string[] = [];

  after(() => {
    if (report.length) console.log(`      normalized errors against the float64 reference:\n${report.map((r) => `        ${r}`).join('\n')}`);
  });

  describe('tiled matmul against a float64 loop', () => {
    const upload = (data: Float64Array) => {
      const b = device.createBuffer({ size: 4 * data.length, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
      new Float32Array(b.getMappedRange()).set(data);
      b.unmap();
      return b;
    };
    const random = (n: number, seed: number) => {
      let s = seed >>> 0;
      return Float64Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296) * 2 - 1);
    };
    // [M, N, K]: odd sizes, more than one tile in each direction, K not a multiple of 16, and 1×1×1.
    const shapes: [number, number, number, string][] = [[37, 53, 29, 'plain'], [70, 130, 17, 'bias + softplus'], [65, 67, 100, 'bias + residual'], [1, 1, 1, 'plain']];
    // The device's own tiling, and each GPU tiling (16×16 threads sharing tiles through workgroup memory) run on SwiftShader too.
    const tilings: [string, boolean, { tile?: MatmulTile; splits?: number }][] = [
      ['device default', software, {}],
      ['GPU 4×4', false, { tile: { rows: 4, cols: 4 }, splits: 1 }],
      ['GPU 8×4', false, { tile: { rows: 8, cols: 4 }, splits: 1 }],
      ['GPU 8×8', false, { tile: { rows: 8, cols: 8 }, splits: 1 }],
      // K split in slices of 16 or 32 (the last one short, or empty for K 29 in 3), summed by a second dispatch with the epilogue.
      ['GPU 4×4, K in 3 slices', false, { tile: { rows: 4, cols: 4 }, splits: 3 }],
    ];
    for (const [tiling, asGpu, choice] of tilings) {
      for (const [M, N, K, kind] of tiling === 'device default' ? shapes : shapes.slice(0, 3)) {
        it(`${M}×${N}×${K}, ${kind}, ${tiling}`, async () => {
          const bias = kind !== 'plain', softplusOut = kind.includes('softplus'), residual = kind.includes('residual');
          const x: F64 = { shape: [M, K], data: random(M * K, M * 131 + K) };
          const w: F64 = { shape: [N, K], data: random(N * K, N * 7 + K) };
          const b: F64 = { shape: [N], data: random(N, N + 3) };
          const r: F64 = { shape: [M, N], data: random(M * N, M + N) };
          let want = linear(x, w, bias ? b : undefined);
          if (softplusOut) want = map(want, softplus);
          if (residual) want = { shape: want.shape, data: want.data.map((v, i) => v + r.data[i]) };
          const y = device.createBuffer({ size: 4 * M * N, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
          const cache = new KernelCache(device);
          const storage = { X: { buffer: upload(x.data) }, W: { buffer: upload(w.data) }, Bias: { buffer: upload(b.data) }, Residual: { buffer: upload(r.data) }, Y: { buffer: y } };
          const scratch = { cache, partials: (n: number) => device.createBuffer({ size: 4 * n, usage: GPUBufferUsage.STORAGE }) };
          const d = matmulDispatches(scratch, 'matmul', { bias, softplus: softplusOut, residual, planes: [N], software: asGpu }, { M, N, K, aOffset: 0 }, storage, choice);
          assert.equal(d.length, (choice.splits ?? 1) > 1 ? 2 : 1);
          const encoder = device.createCommandEncoder();
          const pass = encoder.beginComputePass();
          record(pass, d);
          pass.end();
          device.queue.submit([encoder.finish()]);
          report.push(`matmul ${M}×${N}×${K} ${kind} ${tiling}: ${expectClose(await readBuffer(device, y, 4 * M * N), want, 'matmul').toExponential(1)}`);
        });
      }
    }
  });

  // Every model fixture: Mamba-1, Mamba-2, the bundled demo model, FalconMamba (Mamba-1 with norms on dt, B, C).
  const models: [string, string][] = [
    ['mamba1-tiny', fixture('mamba1-tiny')],
    ['mamba2-tiny', fixture('mamba2-tiny')],
    ['mamba1-demo', path.join(__dirname, '..', '..', 'assets', 'mamba1-demo')],
    ['falcon_mamba', fixture('families', 'falcon_mamba')],
  ];
  /** What the f16 weight format stores in f16 (the rest stays f32): the projections, and the embedding with the tied lm_head. */
  const PROJECTIONS = ['inProjW', 'xProjW', 'dtProjW', 'outProjW'];
  /** The states after the first token, one inside the second 5-token chunk, and the last. */
  const STATES_AT = [0, 7, -1];
  for (const [name, folder] of models) {
    describe(`fixture: ${name}, 12 tokens`, () => {
      let ids: number[];
      let weights: GpuWeights;
      let ref: ReturnType<typeof referenceForward>;
      let refPredictions: Predictions;
      let loaded64: LoadedModel<'float64'>;
      before(async () => {
        const files = new NodeFolderStore(folder);
        loaded64 = await loadModelFolder(files, 'float64');
        // sample1's ids where the vocabulary holds them (FalconMamba's fixture has a smaller one).
        ids = sampleIds(12).map((id) => id % loaded64.embedding!.shape[0]);
        weights = await uploadWeights(device, await loadModelFolder(files, 'float32'));
        ref = referenceForward(loaded64, ids, { statesAt: STATES_AT });
        refPredictions = predictionsFromLogits(ref.logits!, ids, 10);
      });
      after(() => weights?.destroy());

      const checkForward = async (chunkLength: number | undefined, what: string) => {
        const nLayer = weights.config.nLayer;
        const layers = Array.from({ length: nLayer }, (_, i) => i);
        const plan = await createForwardPlan(weights, { tokens: ids.length, software, chunkLength, statesAt: STATES_AT, capture: { layers, quantities: [...CAPTURE_NAMES] } });
        try {
          const out = await nativeForward(plan, ids);
          const errors: Record<string, number> = { predictions: expectPredictions(out.predictions, refPredictions, what) };
          assert.deepEqual(out.layers.map((l) => l.layer), layers);
          for (const l of out.layers) {
            assert.deepEqual([...l.hTokens!], [0, 7, 11], `${what} layer ${l.layer} h_tokens`);
            const want = ref.layers[l.layer].tensors;
            for (const q of CAPTURE_NAMES) {
              // A hybrid's paths (ssm_out, attn_out, …) are no Mamba layer's: none captured where the reference has none.
              if (!want[q]) {
                assert.equal(l.tensors[q as InternalName], undefined, `${what} layer ${l.layer} ${q}`);
                continue;
              }
              const got = l.tensors[q as InternalName]!;
              assert.deepEqual(got.shape, want[q]!.shape, `${what} layer ${l.layer} ${q} shape`);
              errors[`${q}`] = Math.max(errors[q] ?? 0, expectClose(got.data, want[q]!, `${what} layer ${l.layer} ${q}`));
            }
          }
          report.push(`${name} ${what}: ${Object.entries(errors).map(([q, e]) => `${q} ${e.toExponential(1)}`).join(', ')}`);
        } finally {
          plan.destroy();
        }
      };

      it('top-10 predictions and every captured internal of every layer match the reference (the device default: one scan chunk here)', () => checkForward(undefined, 'one chunk'));
      it('the same with the chunked scan (5-token chunks: chunk ends, carry, output)', () => checkForward(5, 'chunked'));

      it('a plan reused for a second forward gives identical results and creates nothing', async () => {
        const plan = await createForwardPlan(weights, { tokens: ids.length, software, capture: { layers: [0], quantities: ['delta'] } });
        try {
          const first = await nativeForward(plan, ids);
          const counter = countCreations(device);
          let second: Awaited<ReturnType<typeof nativeForward>>;
          try {
            second = await nativeForward(plan, ids);
          } finally {
            counter.restore();
          }
          assert.deepEqual(counter.counts, { createComputePipeline: 0, createComputePipelineAsync: 0, createShaderModule: 0, createBindGroup: 0, createBuffer: 0 });
          assert.deepEqual(second.predictions, first.predictions);
          assert.deepEqual(second.layers, first.layers);
          // Different tokens on the same plan: the ids are the only per-forward input.
          const other = ids.map((id) => (id * 7 + 3) % weights.config.vocabSize);
          const third = await nativeForward(plan, other);
          const refOther = referenceForward(loaded64, other, { layers: [0], keep: ['delta'] });
          expectPredictions(third.predictions, predictionsFromLogits(refOther.logits!, other, 10), 'other tokens');
          expectClose(third.layers[0].tensors.delta!.data, refOther.layers[0].tensors.delta!, 'other tokens Δ');
          // Every layer runs layer 0's pipelines: the count does not grow with depth.
          const all = [...plan.embed, ...plan.layers.flat(), ...plan.head.flatMap((s) => s.dispatches)];
          assert.equal(new Set(all.map((d) => d.pipeline)).size, plan.pipelineCount);
          for (const d of plan.layers[1]) assert.ok(plan.layers[0].some((e) => e.pipeline === d.pipeline), `${d.label} has a pipeline of its own`);
          report.push(`${name}: ${plan.pipelineCount} pipelines, ${plan.layers.map((l) => l.length).join(' / ')} dispatches per layer, ${plan.embed.length + plan.head.length} outside the layers`);
        } finally {
          plan.destroy();
        }
      });

      it('captures only the token range asked for: rows 3 … 8 of each per-token internal, h whole', async () => {
        const plan = await createForwardPlan(weights, { tokens: ids.length, software, statesAt: [5], capture: { layers: [0], quantities: ['delta', 'C', 'z', 'h'], tokens: [3, 9] } });
        try {
          const out = await nativeForward(plan, ids);
          const got = out.layers[0].tensors;
          for (const q of ['delta', 'C', 'z'] as const) {
            const want = ref.layers[0].tensors[q]!;
            const width = want.shape[1];
            assert.deepEqual(got[q]!.shape, [6, width], q);
            expectClose(got[q]!.data, { shape: [6, width], data: want.data.subarray(3 * width, 9 * width) }, `${q} rows 3 … 8`);
          }
          assert.equal(got.h!.shape[0], 1);
        } finally {
          plan.destroy();
        }
        await assert.rejects(createForwardPlan(weights, { tokens: 4, capture: { layers: [0], quantities: ['u'], tokens: [2, 2] } }), /not a range within the 4 tokens/);
      });

      it('refuses the wrong number of tokens, ids outside the vocabulary and internals it cannot capture', async () => {
        const plan = await createForwardPlan(weights, { tokens: ids.length, software });
        try {
          await assert.rejects(nativeForward(plan, ids.slice(1)), /for 12 tokens, got 11/);
          await assert.rejects(nativeForward(plan, [...ids.slice(1), weights.config.vocabSize]), new RegExp(`outside the ${weights.config.vocabSize}-token vocabulary`));
        } finally {
          plan.destroy();
        }
        await assert.rejects(createForwardPlan(weights, { tokens: 4, capture: { layers: [0], quantities: ['logits' as never] } }), /cannot capture "logits"/);
        await assert.rejects(createForwardPlan(weights, { tokens: 4, statesAt: [4], capture: { layers: [0], quantities: ['h'] } }), /position 4 is outside a 4-token sample/);
        await assert.rejects(createForwardPlan(weights, { tokens: 4, capture: { layers: [weights.config.nLayer], quantities: ['delta'] } }), /is outside the model's/);
      });

      it('with f16 weights: the reference on the same f16-rounded weights within fp32 tolerance, and the distance from the f32 weights', async () => {
        const rounded = await loadModelFolder(new NodeFolderStore(folder), 'float64');
        const toHalf = (p: Param<'float64'> | undefined) => p?.data.forEach((v, i, a) => (a[i] = f16ToFloat(floatToF16(v))));
        for (const layer of rounded.layers) layer.open((_k, _c, params) => PROJECTIONS.forEach((name) => toHalf((params as Record<string, Param<'float64'> | undefined>)[name])));
        toHalf(rounded.embedding);
        if (rounded.lmHead !== rounded.embedding) toHalf(rounded.lmHead);
        const refHalf = referenceForward(rounded, ids);
        const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(folder), 'float32'), { software, weights: 'f16' });
        try {
          assert.equal(model.weights.format, 'f16');
          const out = await model.forward(ids, { keep: ['delta', 'y'] });
          expectClose(out.logits!.data, refHalf.logits!, 'f16 logits against the f16-rounded reference');
          for (const l of out.layers) expectClose(l.tensors.y!.data, refHalf.layers[l.layer].tensors.y!, `f16 layer ${l.layer} y against the f16-rounded reference`);
          const d = diffArrays(ref.logits!.data as Float64Array, out.logits!.data, ref.logits!.shape, TOL);
          report.push(`${name} f16 weights: logits ${d.normalizedError.toExponential(1)} from the f32-weight reference, max abs ${d.maxAbsError.toExponential(1)}, ${d.firstDivergence ? 'outside' : 'within'} mamba_ssm's fp32 tolerance`);
        } finally {
          model.dispose();
        }
      });

      it('as a WebGpuModel: ForwardOptions mean what they mean on the other engines (layers, keep, statesAt; logits without predictions)', async () => {
        const model = await WebGpuModel.upload(device, await loadModelFolder(new NodeFolderStore(folder), 'float32'), { software });
        try {
          const last = weights.config.nLayer - 1;
          const withLogits = await model.forward(ids, { layers: [last], keep: ['delta', 'h'], statesAt: [-1] });
          assert.equal(withLogits.predictions, undefined);
          const logitsError = expectClose(withLogits.logits!.data, ref.logits!, 'logits');
          assert.deepEqual(withLogits.layers.map((l) => [l.layer, Object.keys(l.tensors).sort(), [...l.hTokens!]]), [[last, ['delta', 'h'], [11]]]);
          const wantH = ref.layers[last].tensors.h!;
          const one = wantH.data.length / 3;
          expectClose(withLogits.layers[0].tensors.h!.data, { shape: [1, ...wantH.shape.slice(1)], data: wantH.data.subarray(2 * one) }, 'h after the last token');
          const withTop = await model.forward(ids, { predictions: 10, keep: ['u'], layers: [0] });
          assert.equal(withTop.logits, undefined);
          expectPredictions(withTop.predictions!, refPredictions, 'WebGpuModel');
          expectClose(withTop.layers[0].tensors.u!.data, ref.layers[0].tensors.u!, 'u');
          report.push(`${name} WebGpuModel: logits ${logitsError.toExponential(1)}`);
        } finally {
          model.dispose();
        }
      });
    });
  }

  describe('weights in a 16-bit checkpoint\'s own format', () => {
    for (const [name, folder, format] of [['mamba1-hf-bf16 (torch.save, bf16)', fixture('pickle', 'mamba1-hf-bf16'), 'bf16'], ['mamba1-demo (safetensors, f16)', path.join(__dirname, '..', '..', 'assets', 'mamba1-demo'), 'f16']] as const) {
      it(`${name}: storedFormat picks ${format}, which holds exactly the checkpoint's values: the same run as f32 weights, bit for bit, in half the memory`, async () => {
        const files = new NodeFolderStore(folder);
        assert.equal(storedFormat(await openCheckpoint(files)), format);
        const ids = [3, 17, 0, 250, 9, 41, 7, 2];
        const runs = [];
        for (const weights of ['f32', format] as const) {
          const model = await WebGpuModel.upload(device, await loadModelFolder(files, 'float32'), { software, weights });
          try {
            runs.push({ bytes: model.weights.bytes, out: await model.forward(ids, { keep: ['delta', 'y'], statesAt: [-1] }) });
          } finally {
            model.dispose();
          }
        }
        assert.deepEqual(runs[1].out, runs[0].out);
        assert.ok(runs[1].bytes < 0.6 * runs[0].bytes, `${runs[1].bytes} of ${runs[0].bytes} bytes`);
      });
    }

    it('packs bf16 round to nearest even, f16 as floatToF16, and keeps NaN a NaN', () => {
      // 1 + 2^-8 is halfway between bf16's 1 and 1 + 2^-7: ties go to the even 1; 1 + 3·2^-8 goes up to 1 + 2^-6.
      const words = packHalves([1 + 2 ** -8, 1 + 3 * 2 ** -8, NaN, -2], 'bf16');
      assert.deepEqual([words[0] & 0xffff, words[0] >>> 16, words[1] >>> 16], [0x3f80, 0x3f82, 0xc000]);
      assert.ok(((words[1] & 0x7f80) === 0x7f80) && (words[1] & 0x7f) !== 0, 'NaN');
      assert.deepEqual([...packHalves([1.5, -0.125, 7], 'f16')], [(0xb000 << 16 | 0x3e00) >>> 0, 0x4700]);
    });
  });
});
