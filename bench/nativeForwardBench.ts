/**
 * (c) The native WebGPU forward (src/engine/webgpu) of the random-weight mamba-130m-shaped model:
 * one command encoder and one submit per forward, pipelines and buffers made once per plan.
 * Timed end to end from JS (ids written, forward encoded and submitted, the readback mapped and
 * copied out), as a caller sees it: with the top-10 next tokens only, and as the panel runs it,
 * with every layer's z, u, Δ, B, C read back as well.
 */
import type { LanguageModel } from '../src/engine/model/graph';
import { nativeForward } from '../src/engine/webgpu/forward';
import { createForwardPlan, type ForwardPlanOptions } from '../src/engine/webgpu/plan';
import { uploadWeights } from '../src/engine/webgpu/weights';
import type { Row } from './report';
import { timeAsync } from './timing';

export interface NativeForwardBenchOptions {
  readonly tokens: number;
  readonly reps: number;
  readonly software: boolean;
}

export async function runNativeForwardBench(device: GPUDevice, model: LanguageModel<'float32'>, opts: NativeForwardBenchOptions, log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const L = opts.tokens, layers = model.layers.length;
  const ids = Int32Array.from({ length: L }, (_, i) => (i * 7919 + 13) % model.config.vocabSize);
  const weights = uploadWeights(device, model);
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
        rows.push({ section: 'forward', name: `native forward, ${layers} layers, ${name}`, backend: 'webgpu-native', shape: `${L} tokens`, ms: t.ms, note: `${opts.reps} runs; ${plan.pipelineCount} pipelines; readback ${mb.toFixed(mb < 1 ? 2 : 0)} MB` });
      } finally {
        plan.destroy();
      }
    }
  } finally {
    weights.destroy();
  }
  return rows;
}
