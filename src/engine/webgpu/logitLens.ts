/**
 * The logit lens on the native WebGPU engine (ForwardOptions.logitLens, issue 16 item 5): each
 * kept layer's output stream through the final norm (whose weight carries the family's logits
 * multiplier: weights.ts), the lm_head and the top-k, on the GPU, with the head's own kernels
 * (rmsNorm.ts, matmul.ts, topK.ts), as the float64 reference's lensOf (reference/forward.ts) and
 * tfjs's headPredictions compute it. The streams are the forward's captured hidden_out: one layer
 * at a time is written to the device, normed, put through lm_head block by block (at most
 * `logitsBlockBytes` of logits at once) and reduced to its predictions, which are copied out; the
 * predictions of all the layers are read back once.
 */
import type { Predictions } from '../predictions';
import { KernelCache, record, type PipelineCache } from './kernel';
import { matmulDispatches } from './matmul';
import { rmsNormKernel, rmsNormWorkgroups } from './rmsNorm';
import { gpuSettled } from './settle';
import { decodePredictions, predictionWords, topKKernel } from './topK';
import type { GpuWeights } from './weights';

export interface LogitLensOptions {
  /** Predictions per position (ForwardOptions.logitLens). */
  readonly k: number;
  /** A CPU implementation (SwiftShader): the cooperative kernels as one invocation per workgroup. */
  readonly software: boolean;
  /** Pipelines compiled by the model's plans, reused (and added to). */
  readonly pipelines?: PipelineCache;
  /** Bytes of logits computed at a time (default 256 MiB, at most the device's binding limit). */
  readonly logitsBlockBytes?: number;
  /** Polled before each layer; throw CancelledError to stop. */
  readonly checkCancelled?: () => void;
}

const DEFAULT_LOGITS_BLOCK_BYTES = 256 * 2 ** 20;

/** The lens of each stream [L, d_model] (a layer's hidden_out) after the tokens `ids`: the top k per position, the next token's probability and rank. */
export async function webgpuLogitLens(weights: GpuWeights, ids: ArrayLike<number>, streams: readonly ArrayLike<number>[], options: LogitLensOptions): Promise<Predictions[]> {
  const { device, config: c } = weights;
  const L = ids.length, H = c.dModel, V = c.vocabSize, k = options.k;
  if (!Number.isInteger(k) || k < 1 || k > 12 || k > V) throw new RangeError(`the logit lens: k must be 1 … ${Math.min(12, V)}, got ${k}`);
  for (const s of streams) if (s.length !== L * H) throw new RangeError(`the logit lens: a stream of ${s.length} values is not [${L}, ${H}]`);
  if (!streams.length) return [];
  const owned: GPUBuffer[] = [];
  const buffer = (label: string, bytes: number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST) => {
    const b = device.createBuffer({ label, size: Math.max(16, bytes), usage });
    owned.push(b);
    return b;
  };
  const cache = new KernelCache(device, options.pipelines);
  try {
    const idBuffer = buffer('lens token ids', 4 * L);
    device.queue.writeBuffer(idBuffer, 0, Int32Array.from(ids));
    const stream = buffer('lens stream', 4 * L * H);
    const normed = buffer('lens norm_f', 4 * L * H);
    const blockBytes = Math.min(options.logitsBlockBytes ?? DEFAULT_LOGITS_BLOCK_BYTES, device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    const blockRows = Math.max(1, Math.min(L, Math.floor(blockBytes / (4 * V))));
    const block = buffer('lens logits block', 4 * blockRows * V);
    const predictionBytes = 4 * predictionWords(L, k);
    const predictions = buffer('lens predictions', predictionBytes);
    const readback = buffer('lens readback', predictionBytes * streams.length, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    // lm_head is split over K only when its output is small (a short sequence): scratch for the partial products then.
    const partials = new Map<number, GPUBuffer>();
    const scratch = {
      cache,
      partials(elements: number) {
        if (!partials.has(elements)) partials.set(elements, buffer('lens matmul partials', 4 * elements));
        return partials.get(elements)!;
      },
    };
    // One layer's work, the same dispatches for every layer (each writes the stream buffer first).
    const dispatches = [cache.dispatch('lens norm_f', rmsNormKernel({ software: options.software }), rmsNormWorkgroups(L, H, H), { X: { buffer: stream }, Weight: { buffer: weights.normF }, result: { buffer: normed } }, { width: H, groupSize: H, eps: c.eps })];
    for (let m0 = 0; m0 < L; m0 += blockRows) {
      const rows = Math.min(blockRows, L - m0);
      dispatches.push(
        ...matmulDispatches(scratch, `lens lm_head rows ${m0}…`, { bias: false, softplus: false, residual: false, planes: [V], software: options.software, weights: weights.format }, { M: rows, N: V, K: H, aOffset: m0 * H }, { X: { buffer: normed }, W: { buffer: weights.lmHead }, Y: { buffer: block } }),
        cache.dispatch(`lens top-${k} rows ${m0}…`, topKKernel(k, options.software), [rows, 1], { Logits: { buffer: block }, Ids: { buffer: idBuffer }, result: { buffer: predictions } }, { vocab: V, rowOffset: m0, seqLen: L, idsLen: L }),
      );
    }
    device.pushErrorScope('validation');
    for (const [i, s] of streams.entries()) {
      options.checkCancelled?.();
      // Writes and submits run in queue order: this layer's stream is written after the last layer's work read it.
      device.queue.writeBuffer(stream, 0, Float32Array.from(s));
      const encoder = device.createCommandEncoder({ label: `logit lens ${i}` });
      // One pass, as the forward's head: WebGPU orders a dispatch's writes before the next dispatch's reads.
      const pass = encoder.beginComputePass();
      record(pass, dispatches);
      pass.end();
      encoder.copyBufferToBuffer(predictions, 0, readback, i * predictionBytes, predictionBytes);
      device.queue.submit([encoder.finish()]);
    }
    const error = await gpuSettled(device.popErrorScope());
    if (error) throw new Error(`the WebGPU logit lens failed: ${error.message}`);
    await gpuSettled(readback.mapAsync(GPUMapMode.READ));
    try {
      const words = readback.getMappedRange();
      return streams.map((_, i) => decodePredictions(words, L, k, i * predictionBytes));
    } finally {
      readback.unmap();
    }
  } finally {
    owned.forEach((b) => b.destroy());
    cache.uniformBuffers.forEach((b) => b.destroy());
  }
}
