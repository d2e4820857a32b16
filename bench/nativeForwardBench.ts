/**
 * (c) The native WebGPU forward (src/engine/webgpu) of the random-weight mamba-130m-shaped model:
 * one command encoder and one submit per forward, pipelines and buffers made once per plan.
 * Timed end to end from JS (ids written, forward encoded and submitted, the readback mapped and
 * copied out), as a caller sees it: with the top-10 next tokens only, and as the panel runs it,
 * with every layer's z, u, Δ, B, C read back as well. Then the top-10 plan profiled kernel by
 * kernel (nativeProfile.ts), and the CPU time to encode and submit it.
 */
import type { LanguageModel } from '../src/engine/model/graph';
import { nativeForward } from '../src/engine/webgpu/forward';
import { createForwardPlan, type ForwardPlan, type ForwardPlanOptions } from '../src/engine/webgpu/plan';
import { uploadWeights } from '../src/engine/webgpu/weights';
import { encodeTime, H200, profileForward } from './nativeProfile';
import type { Row } from './report';
import { median, timeAsync } from './timing';

export interface NativeForwardBenchOptions {
  readonly tokens: number;
  readonly reps: number;
  readonly software: boolean;
  /** Names the model in the rows ("mamba-130m"). */
  readonly model: string;
  /** Profile the top-10 plan kernel by kernel (needs timestamp-query). */
  readonly profile: boolean;
}

export async function runNativeForwardBench(device: GPUDevice, model: LanguageModel<'float32'>, opts: NativeForwardBenchOptions, log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const L = opts.tokens, layers = model.layers.length;
  const ids = Int32Array.from({ length: L }, (_, i) => (i * 7919 + 13) % model.config.vocabSize);
  const weights = await uploadWeights(device, model);
  const runs: [string, ForwardPlanOptions['capture']][] = [
    ['top-10 predictions to the host', undefined],
    ['as the panel runs it: every layer’s z, u, Δ, B, C and top-10 predictions', { layers: model.layers.map((l) => l.index), quantities: ['z', 'u', 'delta', 'B', 'C'] }],
  ];
  try {
    for (const [name, capture] of runs) {
      log(`forward: native WebGPU, ${layers} layers, ${L} tokens, ${name}`);
      const plan = await createForwardPlan(weights, { tokens: L, k: 10, software: opts.software, capture });
      try {
        for (let i = 0; i < 3; i++) await nativeForward(plan, ids); // pipelines compiled, caches warm
        const t = await timeAsync(async () => void (await nativeForward(plan, ids)), opts.reps);
        const mb = plan.readbackBytes / 1e6;
        rows.push({ section: 'forward', name: `native forward, ${opts.model}, ${layers} layers, ${name}`, backend: 'webgpu-native', shape: `${L} tokens`, ms: t.ms, note: `${opts.reps} runs; ${plan.pipelineCount} pipelines; readback ${mb.toFixed(mb < 1 ? 2 : 0)} MB` });
        if (opts.profile && !capture) rows.push(...(await profileRows(plan, ids, opts, log)));
      } finally {
        plan.destroy();
      }
    }
  } finally {
    weights.destroy();
  }
  rows.push(await halfWeightRow(device, model, ids, opts, log));
  return rows;
}

/** The top-10 forward with the projections stored as packed f16 (weightFormat.ts): its time and the weights' bytes. */
async function halfWeightRow(device: GPUDevice, model: LanguageModel<'float32'>, ids: Int32Array, opts: NativeForwardBenchOptions, log: (s: string) => void): Promise<Row> {
  log(`forward: native WebGPU, f16 weights, ${opts.tokens} tokens`);
  const weights = await uploadWeights(device, model, 'f16');
  const plan = await createForwardPlan(weights, { tokens: opts.tokens, k: 10, software: opts.software });
  try {
    for (let i = 0; i < 3; i++) await nativeForward(plan, ids);
    const t = await timeAsync(async () => void (await nativeForward(plan, ids)), opts.reps);
    return { section: 'forward', name: `native forward, ${opts.model}, f16 weights, top-10 predictions to the host`, backend: 'webgpu-native', shape: `${opts.tokens} tokens`, ms: t.ms, note: `${opts.reps} runs; weights ${(weights.bytes / 2 ** 20).toFixed(0)} MiB on the GPU` };
  } finally {
    plan.destroy();
    weights.destroy();
  }
}

/** One row per kind of kernel (GPU time summed over the layers, roofline figures), then the sum and the CPU's encode time. */
async function profileRows(plan: ForwardPlan, ids: Int32Array<ArrayBuffer>, opts: NativeForwardBenchOptions, log: (s: string) => void): Promise<Row[]> {
  log(`profiling the ${opts.model} forward kernel by kernel`);
  const kernels = await profileForward(plan, ids, 5);
  const shape = `${plan.tokens} tokens`;
  const rows: Row[] = kernels.map((k) => {
    const tflops = k.flops !== undefined ? k.flops / (k.ms * 1e9) : undefined;
    const gbps = k.bytes !== undefined ? k.bytes / (k.ms * 1e6) : undefined;
    const roof = [
      tflops !== undefined ? `${tflops.toFixed(1)} TFLOP/s (${((100 * tflops) / H200.fp32Tflops).toFixed(0)}% of fp32 peak)` : '',
      gbps !== undefined ? `${((100 * gbps) / (H200.hbmTBs * 1e3)).toFixed(0)}% of HBM` : '',
    ].filter(Boolean).join(', ');
    return { section: 'kernels', name: `${opts.model}: ${k.kernel}`, backend: 'webgpu-native', shape, ms: k.ms, gpuMs: k.ms, ...(gbps !== undefined ? { gbps } : {}), note: `${k.count} dispatches${roof ? `; ${roof}` : ''}` };
  });
  const total = kernels.reduce((s, k) => s + k.ms, 0);
  rows.push({ section: 'kernels', name: `${opts.model}: all kernels (sum of GPU time)`, backend: 'webgpu-native', shape, ms: total, gpuMs: total, note: `${kernels.reduce((s, k) => s + k.count, 0)} dispatches` });
  const bytes = 256 * 2 ** 20;
  const readback = await readbackRate(plan.device, bytes);
  rows.push({ section: 'kernels', name: `${opts.model}: readback of ${bytes / 2 ** 20} MiB (GPU buffer → MAP_READ copy → mapped → a JS ArrayBuffer)`, backend: 'webgpu-native', shape: '', ms: readback, gbps: bytes / (readback * 1e6), note: 'the rate the panel’s captures come back at; 5 runs, median' });
  const cpu = await encodeTime(plan, ids, 20);
  rows.push({ section: 'kernels', name: `${opts.model}: CPU time to encode and submit one forward`, backend: 'webgpu-native', shape, ms: cpu, note: '20 runs, median; target ≤ 2 ms' });
  return rows;
}

/** Milliseconds to read `bytes` back from a storage buffer, as a forward's captures are. */
async function readbackRate(device: GPUDevice, bytes: number): Promise<number> {
  const source = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const target = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const times: number[] = [];
  try {
    for (let r = 0; r < 6; r++) {
      const t0 = performance.now();
      const encoder = device.createCommandEncoder();
      encoder.copyBufferToBuffer(source, 0, target, 0, bytes);
      device.queue.submit([encoder.finish()]);
      await target.mapAsync(GPUMapMode.READ);
      new Uint8Array(target.getMappedRange().slice(0));
      target.unmap();
      if (r > 0) times.push(performance.now() - t0);
    }
  } finally {
    source.destroy();
    target.destroy();
  }
  return median(times);
}
