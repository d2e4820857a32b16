/**
 * The ablation sweep on the native WebGPU engine (issue 16, item 3): each token's write ablated
 * in each layer in turn, as ../analysis/sweep.ts's ablationSweep does in float64 (the oracle, one
 * forward per cell), with the same result. What makes it fast:
 *  - one plan, built once: every swept layer's scan reads edit words (edits.ts), and a cell only
 *    rewrites two of them (its own w_s = 0, the previous cell's back to 1) with queue.writeBuffer;
 *  - a cell of layer ℓ starts from the clean stream entering ℓ, kept on the GPU from the clean
 *    run: layers before ℓ are not run again;
 *  - the lm_head runs over the blocks of rows from the cell's token on (positions before it are the
 *    clean ones, their KL 0), and the KL and Δloss against the clean logits (kept on the GPU) are
 *    reduced there: two floats per cell, all read back once at the end;
 *  - cells are submitted without waiting for each: a batch is in flight while the next is encoded.
 */
import type { AblationSweep } from '../analysis/sweep';
import { barrier, cooperativeThreads, KernelCache, record, type Dispatch, type KernelSpec } from './kernel';
import type { WebGpuModel } from './model';
import { createForwardPlan, type ForwardPlan } from './plan';
import { gpuSettled } from './settle';

export interface WebGpuSweepOptions {
  /** Layers swept (default all); each must have a scan. */
  readonly layers?: readonly number[];
  /** Tokens swept (default all). */
  readonly tokens?: readonly number[];
  /** After each batch of cells: cells done. */
  readonly onProgress?: (done: number) => void;
  /** Polled between batches; throw CancelledError to stop. */
  readonly checkCancelled?: () => void;
  /** Rows of the lm_head per block (default 64): a cell runs the blocks from its token's on. */
  readonly blockRows?: number;
  /** Cells per batch between waits (default 32). */
  readonly batch?: number;
}

/**
 * Per row t of a logits block (one workgroup per row): KL(p_clean ‖ p_ablated) and the change of
 * the next token's loss. With δ = z_clean − z_ablated and the clean row's max m:
 *   KL = Σ p_c·δ + log Σ p_c·e^{−δ} = A/S + log1p(B/S),  S = Σ e^{z_c − m}, A = Σ e^{z_c − m}·δ, B = Σ (e^{z_a − m} − e^{z_c − m})
 *   Δloss = δ[next] + log1p(B/S)
 * Both terms are of the size of δ, not of the logits: no cancellation between two log-sum-exps,
 * and B sums the differences itself, so a KL far below fp32's epsilon is not lost in log(1 + ε).
 */
function effectRowKernel(software: boolean): KernelSpec {
  const T = cooperativeThreads(software, 256);
  const sync = barrier(T);
  return {
    storage: [{ name: 'Ablated', type: 'f32' }, { name: 'Clean', type: 'f32' }, { name: 'Ids', type: 'i32' }, { name: 'result', type: 'f32', write: true }],
    uniforms: [['vocab', 'i32'], ['rowOffset', 'i32'], ['seqLen', 'i32']],
    workgroupSize: T,
    entry: 'workgroup',
    body: `
var<workgroup> sM : array<f32, ${T}>;
var<workgroup> sS : array<f32, ${T}>;
var<workgroup> sA : array<f32, ${T}>;
var<workgroup> sB : array<f32, ${T}>;
fn main(group : vec3<u32>, local : u32) {
  let r = i32(group.x);
  let V = uniforms.vocab;
  let base = r * V;
  var m = -3.0e38;
  var S = 0.0;
  var A = 0.0;
  var B = 0.0;
  for (var v = i32(local); v < V; v = v + ${T}) {
    let zc = Clean[base + v];
    let za = Ablated[base + v];
    if (zc > m) {
      let f = exp(m - zc);
      S = S * f; A = A * f; B = B * f;
      m = zc;
    }
    let e = exp(zc - m);
    S = S + e;
    A = A + e * (zc - za);
    B = B + (exp(za - m) - e);
  }
  sM[local] = m; sS[local] = S; sA[local] = A; sB[local] = B;
  ${sync}
  for (var half = ${T >> 1}u; half > 0u; half = half / 2u) {
    if (local < half) {
      let m2 = max(sM[local], sM[local + half]);
      let f1 = exp(sM[local] - m2);
      let f2 = exp(sM[local + half] - m2);
      sS[local] = sS[local] * f1 + sS[local + half] * f2;
      sA[local] = sA[local] * f1 + sA[local + half] * f2;
      sB[local] = sB[local] * f1 + sB[local + half] * f2;
      sM[local] = m2;
    }
    ${sync}
  }
  if (local == 0u) {
    let t = uniforms.rowOffset + r;
    let ratio = sB[0] / sS[0];
    // log1p: the series where log(1 + x) would round x away.
    let logRatio = select(log(1.0 + ratio), ratio * (1.0 - ratio * (0.5 - ratio / 3.0)), abs(ratio) < 1.0e-3);
    result[2 * t] = max(0.0, sA[0] / sS[0] + logRatio);
    var dLoss = 0.0;
    if (t + 1 < uniforms.seqLen) {
      let next = Ids[t + 1];
      dLoss = Clean[base + next] - Ablated[base + next] + logRatio;
    }
    result[2 * t + 1] = dLoss;
  }
}`,
  };
}

/** The cell's means over the positions from its token s on (Cell = [s, cell index]): KL over s … L−1, Δloss over s … L−2. */
function cellMeanKernel(software: boolean): KernelSpec {
  const T = cooperativeThreads(software, 64);
  const sync = barrier(T);
  return {
    storage: [{ name: 'Rows', type: 'f32' }, { name: 'Cell', type: 'i32' }, { name: 'result', type: 'f32', write: true }],
    uniforms: [['seqLen', 'i32']],
    workgroupSize: T,
    entry: 'workgroup',
    body: `
var<workgroup> sKl : array<f32, ${T}>;
var<workgroup> sLoss : array<f32, ${T}>;
fn main(group : vec3<u32>, local : u32) {
  let s = Cell[0];
  let L = uniforms.seqLen;
  var kl = 0.0;
  var loss = 0.0;
  for (var t = s + i32(local); t < L; t = t + ${T}) {
    kl = kl + Rows[2 * t];
    if (t + 1 < L) { loss = loss + Rows[2 * t + 1]; }
  }
  sKl[local] = kl; sLoss[local] = loss;
  ${sync}
  for (var half = ${T >> 1}u; half > 0u; half = half / 2u) {
    if (local < half) {
      sKl[local] = sKl[local] + sKl[local + half];
      sLoss[local] = sLoss[local] + sLoss[local + half];
    }
    ${sync}
  }
  if (local == 0u) {
    let cell = Cell[1];
    result[2 * cell] = sKl[0] / f32(L - s);
    result[2 * cell + 1] = select(0.0, sLoss[0] / f32(L - 1 - s), L - 1 - s > 0);
  }
}`,
  };
}

/** The tokens × layers map of ablate-write effects, as ablationSweep's (float64) but on the GPU. */
export async function webgpuAblationSweep(model: WebGpuModel, ids: ArrayLike<number>, options: WebGpuSweepOptions = {}): Promise<AblationSweep> {
  const { device } = model.weights;
  const c = model.config;
  const L = ids.length, V = c.vocabSize, H = c.dModel;
  const layers = options.layers ?? Array.from({ length: c.nLayer }, (_, i) => i);
  const tokens = options.tokens ?? Array.from({ length: L }, (_, t) => t);
  for (const t of tokens) if (!Number.isInteger(t) || t < 0 || t >= L) throw new RangeError(`token ${t} is outside the ${L}-token sample`);
  const blockRows = options.blockRows ?? 64;
  const batch = options.batch ?? 32;
  const software = model.software;
  // An empty ablate-write in every swept layer: the scans read edit words, all w_t = 1 (the clean run) until a cell writes its 0.
  const edits = new Map(layers.map((l) => [l, { scan: { noWrite: new Set<number>() } }] as const));
  const plan = await createForwardPlan(model.weights, { tokens: L, k: 1, software, edits, logitsBlockBytes: blockRows * 4 * V, pipelines: model.pipelines });
  const owned: GPUBuffer[] = [];
  const buffer = (label: string, bytes: number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST) => {
    const b = device.createBuffer({ label, size: Math.max(16, bytes), usage });
    owned.push(b);
    return b;
  };
  const cache = new KernelCache(device, model.pipelines);
  try {
    for (const l of layers) if (!plan.writeMultipliers[l]) throw new RangeError(`layer ${l} has no scan whose writes could be ablated`);
    const blocks = plan.head.filter((h) => h.block);
    const cleanStreams = new Map(layers.map((l) => [l, buffer(`clean stream into layer ${l}`, 4 * L * H)]));
    const cleanLogits = blocks.map((b, i) => buffer(`clean logits block ${i}`, 4 * b.block!.rows[1] * V));
    const perRow = buffer('per-row KL and Δloss', 4 * 2 * L);
    const cellInfo = buffer('cell', 8);
    const cells = layers.length * tokens.length;
    const results = buffer('cell means', 4 * 2 * cells);
    const readback = buffer('cell means readback', 4 * 2 * cells, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    const effectRows = blocks.map((b) => cache.dispatch(`effect rows ${b.block!.rows[0]}…`, effectRowKernel(software), [b.block!.rows[1], 1], { Ablated: { buffer: plan.logitsBlock }, Clean: { buffer: cleanLogits[blocks.indexOf(b)] }, Ids: { buffer: plan.ids }, result: { buffer: perRow } }, { vocab: V, rowOffset: b.block!.rows[0], seqLen: L }));
    const cellMean = cache.dispatch('cell means', cellMeanKernel(software), [1, 1], { Rows: { buffer: perRow }, Cell: { buffer: cellInfo }, result: { buffer: results } }, { seqLen: L });
    const normF = plan.head[0].dispatches;

    device.queue.writeBuffer(plan.ids, 0, Int32Array.from(ids));
    const setWrite = (layer: number, t: number, w: number) => {
      for (const m of plan.writeMultipliers[layer]!) device.queue.writeBuffer(m.buffer, m.offset + 4 * t, new Float32Array([w]));
    };
    await validated(device, async () => {
      encodeClean(plan, cleanStreams, blocks.map((b, i) => ({ lmHead: b.block!.lmHead, clean: cleanLogits[i], bytes: 4 * b.block!.rows[1] * V })));
      let inFlight: Promise<unknown> | undefined;
      let done = 0;
      let previous: [number, number] | undefined;
      for (let i = 0; i < layers.length; i++) {
        const layer = layers[i];
        for (let j = 0; j < tokens.length; j++) {
          const s = tokens[j];
          if (previous) setWrite(previous[0], previous[1], 1);
          setWrite(layer, s, 0);
          previous = [layer, s];
          device.queue.writeBuffer(cellInfo, 0, new Int32Array([s, i * tokens.length + j]));
          const encoder = device.createCommandEncoder({ label: `sweep cell ${layer}·${s}` });
          encoder.copyBufferToBuffer(cleanStreams.get(layer)!, 0, plan.layerInputs[layer], 0, 4 * L * H);
          const pass = encoder.beginComputePass();
          record(pass, plan.layers.slice(layer).flat());
          record(pass, normF);
          for (let b = Math.floor(s / blockRows); b < blocks.length; b++) record(pass, [...blocks[b].block!.lmHead, effectRows[b]]);
          record(pass, [cellMean]);
          pass.end();
          device.queue.submit([encoder.finish()]);
          if (++done % batch === 0 || done === cells) {
            // One batch stays in flight while the next is encoded.
            await inFlight;
            inFlight = device.queue.onSubmittedWorkDone();
            options.onProgress?.(Math.max(0, done - batch));
            options.checkCancelled?.();
          }
        }
      }
    });
    const encoder = device.createCommandEncoder({ label: 'sweep results' });
    encoder.copyBufferToBuffer(results, 0, readback, 0, 4 * 2 * cells);
    device.queue.submit([encoder.finish()]);
    await gpuSettled(readback.mapAsync(GPUMapMode.READ));
    const words = new Float32Array(readback.getMappedRange().slice(0));
    readback.unmap();
    options.onProgress?.(cells);
    const meanKl = new Float64Array(cells), meanDLoss = new Float64Array(cells);
    for (let k = 0; k < cells; k++) {
      meanKl[k] = words[2 * k];
      meanDLoss[k] = words[2 * k + 1];
    }
    return { layers, tokens, meanKl, meanDLoss };
  } finally {
    plan.destroy();
    owned.forEach((b) => b.destroy());
    cache.uniformBuffers.forEach((b) => b.destroy());
  }
}

/**
 * Runs `submit` in a validation scope, and throws its first error once the work it submitted has
 * finished (also when it throws: a cancelled sweep's last batch ends before its buffers go).
 */
async function validated(device: GPUDevice, submit: () => Promise<void>): Promise<void> {
  device.pushErrorScope('validation');
  let error: GPUError | null = null;
  try {
    await submit();
  } finally {
    await gpuSettled(device.queue.onSubmittedWorkDone());
    error = await gpuSettled(device.popErrorScope());
  }
  if (error) throw new Error(`the WebGPU sweep failed: ${error.message}`);
}

/** The clean run: each swept layer's input stream kept, and each block of the clean logits. */
function encodeClean(plan: ForwardPlan, streams: ReadonlyMap<number, GPUBuffer>, blocks: readonly { lmHead: readonly Dispatch[]; clean: GPUBuffer; bytes: number }[]): void {
  const { device, weights } = plan;
  const H = weights.config.dModel, L = plan.tokens;
  const encoder = device.createCommandEncoder({ label: 'sweep clean run' });
  const pass = (dispatches: readonly Dispatch[]) => {
    const p = encoder.beginComputePass();
    record(p, dispatches);
    p.end();
  };
  pass(plan.embed);
  plan.layers.forEach((dispatches, layer) => {
    const keep = streams.get(layer);
    if (keep) encoder.copyBufferToBuffer(plan.layerInputs[layer], 0, keep, 0, 4 * L * H);
    pass(dispatches);
  });
  pass(plan.head[0].dispatches);
  for (const b of blocks) {
    pass(b.lmHead);
    encoder.copyBufferToBuffer(plan.logitsBlock, 0, b.clean, 0, b.bytes);
  }
  device.queue.submit([encoder.finish()]);
}
