/**
 * A long sequence on the native WebGPU engine in chunks (issue 13; `inspect --positions --backend
 * webgpu`), with the same result as forwardInChunks (../chunkedForward.ts) on the other engines
 * but without a host round trip between chunks: each layer's state and conv context after a
 * chunk's last token are copied on the GPU into the next chunk's carryIn, right after that layer
 * ran (its capture buffers are scratch a later layer reuses), and every chunk is submitted
 * without waiting for the one before. A chunk runs with the token after it (its last row's
 * next-token probability, from the top-1 kernel like every other row's); lm_head runs again
 * over the kept rows only. What comes back, once, at the end: the next-token probability at every
 * position, the kept rows' logits and the final carries. The [T, V] logits never leave the GPU.
 * (Run 12 on the H200 with a round trip per chunk: 614 ms at 32,768 tokens, 506 ms of it chunks.)
 */
import type { ChunkedRun, ChunkedRunOptions } from '../chunkedForward';
import { InputError } from '../errors';
import { resolvePositions, type LayerInternals } from '../internals';
import { carriesOf } from '../layers/kind';
import type { Tensor } from '../tensor';
import { encodeForward } from './forward';
import { record, type Dispatch } from './kernel';
import type { WebGpuModel } from './model';
import { createForwardPlan, type ForwardPlan } from './plan';
import { gpuSettled } from './settle';
import { requireStateCarried } from './weights';

export type WebGpuLongRunOptions = Pick<ChunkedRunOptions, 'chunkLength' | 'logitsAt' | 'checkCancelled' | 'onProgress'>;

interface ChunkPlan {
  readonly plan: ForwardPlan;
  /** lm_head over one kept row into the row buffer, per row (kept rows repeat from chunk to chunk). */
  readonly lmHead: Map<number, Dispatch[]>;
}

export async function webgpuLongRun(model: WebGpuModel, ids: ArrayLike<number>, options: WebGpuLongRunOptions = {}): Promise<ChunkedRun<Float32Array>> {
  const { device } = model.weights;
  const V = model.config.vocabSize, nLayer = model.config.nLayer;
  const L = ids.length;
  if (L === 0) throw new RangeError('a chunked run needs at least one token');
  const chunk = options.chunkLength ?? 2048;
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`chunk length ${chunk} is not a positive integer`);
  requireStateCarried(model.weights);
  const idData = Int32Array.from(ids);
  const bad = idData.findIndex((t) => t < 0 || t >= V);
  if (bad >= 0) throw new RangeError(`token id ${idData[bad]} at position ${bad} is outside the ${V}-token vocabulary`);
  const positions = resolvePositions(options.logitsAt ?? [-1], L);
  const P = positions.length;

  // Chunk k covers [start, end) and runs with the token after it, except the last.
  const chunks = Array.from({ length: Math.ceil(L / chunk) }, (_, k) => {
    const start = k * chunk, end = Math.min(L, start + chunk);
    return { start, end, tokens: end - start + (end < L ? 1 : 0) };
  });
  const plans = new Map<string, ChunkPlan>();
  const owned: GPUBuffer[] = [];
  const buffer = (label: string, bytes: number, usage: number) => {
    const b = device.createBuffer({ label, size: Math.max(16, bytes), usage });
    owned.push(b);
    return b;
  };
  try {
    for (const c of chunks) {
      const key = `${c.tokens}:${c.end < L}`;
      if (plans.has(key)) continue;
      const plan = await createForwardPlan(model.weights, {
        tokens: c.tokens, k: 1, carryIn: true, statesAt: [c.end < L ? -2 : -1], software: model.software, pipelines: model.pipelines,
        capture: { layers: Array.from({ length: nLayer }, (_, i) => i), quantities: ['h', 'conv_state'] },
      });
      plans.set(key, { plan, lmHead: new Map() });
      const missing = plan.carryIn.findIndex((x) => !x);
      if (missing >= 0) throw new InputError(`layer ${missing}`, 'has no scan state to carry from one chunk to the next: a long run on WebGPU needs every layer to be a Mamba layer');
    }
    const planOf = (c: (typeof chunks)[number]) => plans.get(`${c.tokens}:${c.end < L}`)!;

    const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const allIds = buffer('long run ids', 4 * L, STORAGE);
    device.queue.writeBuffer(allIds, 0, idData);
    const nextProb = buffer('long run next-token probabilities', 4 * L, STORAGE);
    const kept = buffer('long run kept logits', 4 * P * V, STORAGE);
    const row = buffer('long run logits row', 4 * V, STORAGE);
    const results = buffer('long run readback', 4 * L + 4 * P * V, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);

    device.pushErrorScope('validation');
    let p = 0;
    let done: Promise<unknown> = Promise.resolve();
    for (const [k, c] of chunks.entries()) {
      options.checkCancelled?.();
      const { plan, lmHead } = planOf(c);
      const next = chunks[k + 1] ? planOf(chunks[k + 1]).plan : undefined;
      const encoder = device.createCommandEncoder({ label: `long run chunk ${k}` });
      encoder.copyBufferToBuffer(allIds, 4 * c.start, plan.ids, 0, 4 * c.tokens);
      // Each layer's state and conv context after the chunk's last token go straight into the next chunk's carryIn.
      encodeForward(plan, encoder, undefined, next && ((cap) => {
        const carry = next.carryIn[cap.layer]!;
        return cap.name === 'h' ? carry.h : cap.name === 'conv_state' ? carry.conv : undefined;
      }));
      // The top-1 kernel's words: ids [T] | probs [T] | nextProb [T] | nextRank [T]; rows with a next token.
      const rows = c.end - c.start - (c.end < L ? 0 : 1);
      if (rows > 0) encoder.copyBufferToBuffer(plan.predictions, 8 * c.tokens, nextProb, 4 * c.start, 4 * rows);
      for (; p < P && positions[p] < c.end; p++) {
        const r = positions[p] - c.start;
        let dispatches = lmHead.get(r);
        if (!dispatches) lmHead.set(r, (dispatches = plan.lmHeadRows(r, 1, row)));
        const pass = encoder.beginComputePass();
        record(pass, dispatches);
        pass.end();
        encoder.copyBufferToBuffer(row, 0, kept, 4 * p * V, 4 * V);
      }
      if (!next) {
        encoder.copyBufferToBuffer(nextProb, 0, results, 0, 4 * L);
        encoder.copyBufferToBuffer(kept, 0, results, 4 * L, 4 * P * V);
      }
      device.queue.submit([encoder.finish()]);
      const end = c.end;
      done = device.queue.onSubmittedWorkDone().then(() => options.onProgress?.(end));
    }
    const error = await gpuSettled(device.popErrorScope());
    if (error) throw new Error(`the WebGPU long run failed: ${error.message}`);
    await gpuSettled(done);

    const last = planOf(chunks[chunks.length - 1]).plan;
    await gpuSettled(Promise.all([results.mapAsync(GPUMapMode.READ), last.readback.mapAsync(GPUMapMode.READ)]));
    try {
      const words = results.getMappedRange();
      const probs = new Float32Array(words, 0, L);
      const nll = Float64Array.from({ length: L - 1 }, (_, t) => -Math.log(probs[t]));
      const logits: Tensor<Float32Array> = { shape: [P, V], data: new Float32Array(words.slice(4 * L, 4 * L + 4 * P * V)) };
      const captured = last.readback.getMappedRange();
      const layers: LayerInternals<Float32Array>[] = Array.from({ length: nLayer }, (_, layer) => ({
        layer,
        tensors: Object.fromEntries(last.captures.filter((x) => x.layer === layer).map((x) => [x.name, { shape: x.source.shape, data: new Float32Array(captured.slice(x.at, x.at + x.source.range.size)) }])),
      }));
      return { positions, logits, nll, final: carriesOf({ layers }) };
    } finally {
      results.unmap();
      last.readback.unmap();
    }
  } finally {
    // Submitted work ends before its buffers go (a cancelled run's chunks included).
    await gpuSettled(device.queue.onSubmittedWorkDone());
    for (const { plan } of plans.values()) plan.destroy();
    owned.forEach((b) => b.destroy());
  }
}
