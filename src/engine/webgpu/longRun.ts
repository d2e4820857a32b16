/**
 * A long sequence on the native WebGPU engine in chunks (issue 13; `inspect --positions --backend
 * webgpu`), with the same result as forwardInChunks (../chunkedForward.ts) on the other engines
 * but without a host round trip between chunks: each layer's state and conv context after a
 * chunk's last token are copied on the GPU into the next chunk's carryIn, right after that layer
 * ran (its capture buffers are scratch a later layer reuses), and every chunk is submitted
 * without waiting for the one before. A chunk's plan holds the id of the token after it
 * (ForwardPlanOptions.nextId: its last row's next-token log-probability, from the top-1 kernel
 * like every other row's, without running that token through the model); lm_head runs again
 * over the kept rows only. What comes back, once, at the end: the next token's log-probability
 * at every position (its loss: finite however wide the logits), the kept rows' logits and the
 * final carries. The [T, V] logits never leave the GPU.
 * (H200, the mamba-130m shape at 32,768 tokens: 614 ms with a host round trip per chunk in run 12,
 * 480 ms like this in run 13: docs/PERFORMANCE.md 3g.)
 */
import type { ChunkedRun, ChunkedRunOptions } from '../chunkedForward';
import { InputError } from '../errors';
import { resolvePositions, type LayerInternals } from '../internals';
import { carriesOf } from '../layers/kind';
import type { Tensor } from '../tensor';
import { encodeForward } from './forward';
import { record, type Dispatch } from './kernel';
import type { WebGpuModel } from './model';
import type { ForwardPlan } from './plan';
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

  // Chunk k covers [start, end); all but the last hold the id after it.
  const chunks = Array.from({ length: Math.ceil(L / chunk) }, (_, k) => {
    const start = k * chunk, end = Math.min(L, start + chunk);
    return { start, end, tokens: end - start };
  });
  // Chunks of one length share a plan (its carryIn receives the chunk before's carries); the model keeps them for the next run of this chunking.
  const keyOf = (c: (typeof chunks)[number]) => `${c.tokens}:${c.end < L}`;
  const distinct = [...new Map(chunks.map((c) => [keyOf(c), c])).values()];
  const built = await model.plansFor(distinct.map((c) => ({
    tokens: c.tokens, k: 1, carryIn: true, nextId: c.end < L, statesAt: [-1], software: model.software, pipelines: model.pipelines,
    capture: { layers: Array.from({ length: nLayer }, (_, i) => i), quantities: ['h', 'conv_state'] },
  })));
  const missing = built[0].carryIn.findIndex((x) => !x);
  if (missing >= 0) throw new InputError(`layer ${missing}`, 'has no scan state to carry from one chunk to the next: a long run on WebGPU needs every layer to be a Mamba layer');
  const plans = new Map<string, ChunkPlan>(distinct.map((c, i) => [keyOf(c), { plan: built[i], lmHead: new Map() }]));
  const planOf = (c: (typeof chunks)[number]) => plans.get(keyOf(c))!;
  const owned: GPUBuffer[] = [];
  const buffer = (label: string, bytes: number, usage: number) => {
    const b = device.createBuffer({ label, size: Math.max(16, bytes), usage });
    owned.push(b);
    return b;
  };
  try {
    const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const allIds = buffer('long run ids', 4 * L, STORAGE);
    device.queue.writeBuffer(allIds, 0, idData);
    const nextLogProb = buffer('long run next-token log-probabilities', 4 * L, STORAGE);
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
      encoder.copyBufferToBuffer(allIds, 4 * c.start, plan.ids, 0, 4 * (c.tokens + (c.end < L ? 1 : 0)));
      // The sequence starts from zero states: a reused plan's carryIn holds the last run's.
      if (k === 0) for (const carry of plan.carryIn) if (carry) for (const r of [carry.h, carry.conv]) encoder.clearBuffer(r.buffer, r.offset, r.size);
      // Each layer's state and conv context after the chunk's last token go straight into the next chunk's carryIn.
      encodeForward(plan, encoder, undefined, next && ((cap) => {
        const carry = next.carryIn[cap.layer]!;
        return cap.name === 'h' ? carry.h : cap.name === 'conv_state' ? carry.conv : undefined;
      }));
      // The top-1 kernel's words: ids [T] | probs [T] | nextLogProb [T] | nextRank [T]; rows with a next token.
      const rows = c.end - c.start - (c.end < L ? 0 : 1);
      if (rows > 0) encoder.copyBufferToBuffer(plan.predictions, 8 * c.tokens, nextLogProb, 4 * c.start, 4 * rows);
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
        encoder.copyBufferToBuffer(nextLogProb, 0, results, 0, 4 * L);
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
      const logProbs = new Float32Array(words, 0, L);
      const nll = Float64Array.from({ length: L - 1 }, (_, t) => -logProbs[t]);
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
    owned.forEach((b) => b.destroy());
  }
}
