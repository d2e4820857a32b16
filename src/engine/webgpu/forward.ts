/**
 * The native WebGPU forward: one command encoder and one submit per forward, no readback between
 * layers; the only readback is the next-token predictions and the internals the plan captures.
 * The float64 reference forward (../reference/forward.ts) is the oracle it is tested against.
 *
 *   const weights = await uploadWeights(device, await loadModelFolder(files, 'float32'));
 *   const plan = await createForwardPlan(weights, { tokens: ids.length, capture: { layers: [0], quantities: ['delta'] } });
 *   const { predictions, layers } = await nativeForward(plan, ids);
 */
import type { ForwardResult, InternalName, LayerInternals } from '../internals';
import type { Predictions } from '../predictions';
import type { Tensor } from '../tensor';
import { record, type BufferRange, type Dispatch } from './kernel';
import type { CaptureCopy, ForwardPlan } from './plan';
import { gpuSettled } from './settle';
import { decodePredictions, predictionWords } from './topK';

const busy = new WeakSet<ForwardPlan>();

/** Records dispatches as one compute pass. */
export type RecordDispatches = (encoder: GPUCommandEncoder, dispatches: readonly Dispatch[]) => void;

const onePass: RecordDispatches = (encoder, dispatches) => {
  const p = encoder.beginComputePass();
  record(p, dispatches);
  p.end();
};

/**
 * Records a forward's work into `encoder`: the dispatches, as few compute passes as the copies
 * allow (a copy of a capture or of a logits block must sit between passes), and the copies.
 * `recordPass` records each run of dispatches (the benchmark's profiler times each dispatch).
 * `captureInto`: where each capture goes instead of the readback (a long run's next chunk's
 * carryIn: longRun.ts), or nowhere (undefined).
 */
export function encodeForward(plan: ForwardPlan, encoder: GPUCommandEncoder, recordPass: RecordDispatches = onePass, captureInto?: (c: CaptureCopy) => Required<BufferRange> | undefined): void {
  let pending: Dispatch[] = [...plan.embed];
  const copy = (source: GPUBuffer, from: number, target: GPUBuffer, at: number, bytes: number) => {
    if (pending.length) recordPass(encoder, pending);
    pending = [];
    encoder.copyBufferToBuffer(source, from, target, at, bytes);
  };
  plan.layers.forEach((dispatches, layer) => {
    pending.push(...dispatches);
    // Copied before a later layer overwrites the shared activation buffers.
    for (const c of plan.captures) {
      if (c.layer !== layer) continue;
      const into = captureInto ? captureInto(c) : { buffer: plan.readback, offset: c.at, size: c.source.range.size };
      if (!into) continue;
      if (into.size !== c.source.range.size) throw new RangeError(`layer ${layer}'s ${c.name} (${c.source.range.size} bytes) does not fit where it goes (${into.size})`);
      copy(c.source.range.buffer, c.source.range.offset, into.buffer, into.offset, into.size);
    }
  });
  for (const step of plan.head) {
    pending.push(...step.dispatches);
    // The next block overwrites the logits block: its rows are copied out first.
    if (plan.logits && step.logitsAt !== undefined) copy(plan.logits.block, 0, plan.logits.readback, step.logitsAt, step.logitsBytes!);
  }
  if (pending.length) recordPass(encoder, pending);
}

export async function nativeForward(plan: ForwardPlan, ids: ArrayLike<number>): Promise<ForwardResult<Float32Array> & { predictions: Predictions }> {
  const { device, tokens: L, k } = plan;
  const V = plan.weights.config.vocabSize;
  if (ids.length !== L) throw new RangeError(`this forward plan is for ${L} tokens, got ${ids.length}`);
  const idData = new Int32Array(L);
  for (let i = 0; i < L; i++) {
    if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= V) throw new RangeError(`token id ${ids[i]} at position ${i} is outside the ${V}-token vocabulary`);
    idData[i] = ids[i];
  }
  // The plan's buffers hold one forward at a time.
  if (busy.has(plan)) throw new Error('this forward plan is already running a forward');
  busy.add(plan);
  try {
    device.pushErrorScope('validation');
    device.queue.writeBuffer(plan.ids, 0, idData);
    const encoder = device.createCommandEncoder({ label: 'mamba forward' });
    encodeForward(plan, encoder);
    const predictionBytes = 4 * predictionWords(L, k);
    encoder.copyBufferToBuffer(plan.predictions, 0, plan.readback, 0, predictionBytes);
    device.queue.submit([encoder.finish()]);
    const error = await gpuSettled(device.popErrorScope());
    if (error) throw new Error(`the WebGPU forward failed: ${error.message}`);

    const logits = plan.logits ? await readLogits(plan.logits.readback, L, V) : undefined;
    await gpuSettled(plan.readback.mapAsync(GPUMapMode.READ));
    try {
      const words = plan.readback.getMappedRange();
      const predictions = decodePredictions(words, L, k);
      const layers = new Map<number, Partial<Record<InternalName, Tensor<Float32Array>>>>();
      for (const c of plan.captures) {
        const tensors = layers.get(c.layer) ?? {};
        tensors[c.name] = { shape: c.source.shape, data: new Float32Array(words.slice(c.at, c.at + c.source.range.size)) };
        layers.set(c.layer, tensors);
      }
      const internals: LayerInternals<Float32Array>[] = [...layers].map(([layer, tensors]) => ({ layer, tensors, ...(tensors.h ? { hTokens: plan.statesAt.slice() } : {}) }));
      return { predictions, layers: internals, ...(logits ? { logits } : {}) };
    } finally {
      plan.readback.unmap();
    }
  } finally {
    busy.delete(plan);
  }
}

async function readLogits(buffer: GPUBuffer, L: number, V: number): Promise<Tensor<Float32Array>> {
  await gpuSettled(buffer.mapAsync(GPUMapMode.READ));
  try {
    return { shape: [L, V], data: new Float32Array(buffer.getMappedRange().slice(0)) };
  } finally {
    buffer.unmap();
  }
}
