/**
 * The ablation sweep on the native WebGPU engine (issue 16, item 3): each token's write ablated
 * in each layer in turn, as ../analysis/sweep.ts's ablationSweep does in float64 (the oracle, one
 * forward per cell), with the same result. What makes it fast:
 *  - one plan, built once: every swept layer's scan reads edit words (edits.ts), and a cell only
 *    rewrites two of them (its own w_s = 0, the previous cell's back to 1) with queue.writeBuffer;
 *  - a cell of layer ℓ starts from the clean stream entering ℓ, kept on the GPU from the clean
 *    run: layers before ℓ are not run again;
 *  - a cell of token s runs only the tokens from a cut c ≤ s on (cutStep), on a plan of L − c
 *    tokens that carries in each layer's clean state and conv context after c − 1 (copied on the
 *    GPU from the clean run's captures): the tokens before c are clean in every layer. Layers
 *    that attend read every key before c, so a model with one from the first swept layer on is
 *    swept uncut. (Run 11 on the H200, uncut: layer 0's cells 8.3 ms, layer 23's 1.8 ms, so the
 *    layers' work over the whole sequence was most of a cell.);
 *  - the lm_head runs over the rows from the cell's token on (rounded down to TAIL_ALIGN; positions
 *    before it are the clean ones, their KL 0), in one dispatch per logits block, and the KL and
 *    Δloss against the clean logits (kept on the GPU) are reduced there: two floats per cell, all
 *    read back once at the end. (With a dispatch pair per 64-row block, run 9 on the H200 cost
 *    ~0.48 ms per block whatever its rows, fitted over three block sizes: 2.2 of a cell's 6.2 ms.);
 *  - cells are submitted without waiting for each: a batch is in flight while the next is encoded.
 */
import type { AblationSweep } from '../analysis/sweep';
import { barrier, cooperativeThreads, KernelCache, record, unrolled, type Dispatch, type KernelSpec } from './kernel';
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
  /** Rows of the clean logits per block (default: the plan's, as many as one binding holds): a cell runs its block from its token on, then the blocks after. */
  readonly blockRows?: number;
  /** Cells per batch between waits (default 32). */
  readonly batch?: number;
}

/** Logits each thread of the reduction takes per iteration. */
const PER_THREAD = 4;

/**
 * Per row t = rowOffset + r of the ablated logits (one workgroup per row r): KL(p_clean ‖ p_ablated)
 * and the change of the next token's loss, the clean row being row r + cleanRowOffset of its block. With δ = z_clean − z_ablated and the clean row's max m:
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
    uniforms: [['vocab', 'i32'], ['rowOffset', 'i32'], ['cleanRowOffset', 'i32'], ['seqLen', 'i32']],
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
  let cleanBase = (r + uniforms.cleanRowOffset) * V;
  var m = -3.0e38;
  var S = 0.0;
  var A = 0.0;
  var B = 0.0;
  // ${PER_THREAD} logits per iteration, loaded together: the loop is bound by its loads' latency, not by bandwidth.
  // Past the row's end a lane holds −3e38 on both sides (e = 0, δ = 0); the first lane is always inside it.
  for (var v = i32(local) * ${PER_THREAD}; v < V; v = v + ${PER_THREAD * T}) {
    ${unrolled(PER_THREAD, (i) => `let zc${i} = select(-3.0e38, Clean[cleanBase + min(v + ${i}, V - 1)], v + ${i} < V);
    let za${i} = select(-3.0e38, Ablated[base + min(v + ${i}, V - 1)], v + ${i} < V);`, '\n    ')}
    let top = max(${Array.from({ length: PER_THREAD }, (_, i) => `zc${i}`).reduce((a, b) => `max(${a}, ${b})`)}, m);
    let f = exp(m - top);
    S = S * f; A = A * f; B = B * f;
    m = top;
    ${unrolled(PER_THREAD, (i) => `let e${i} = exp(zc${i} - m);
    S = S + e${i};
    A = A + e${i} * (zc${i} - za${i});
    B = B + (exp(za${i} - m) - e${i});`, '\n    ')}
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
      dLoss = Clean[cleanBase + next] - Ablated[base + next] + logRatio;
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

/** A cell's lm_head starts at its token rounded down to this: a few rows more, and one dispatch per start, not per token. */
const TAIL_ALIGN = 16;

/**
 * Cells of the tokens from a cut c (a multiple of this, at most 16 cuts: each is a plan) on run over
 * tokens c … L − 1 only, from the clean run's states after token c − 1: an ablation at s ≥ c leaves
 * every layer's tokens before c clean. On average a cell then runs half the sequence.
 */
function cutStep(L: number): number {
  return TAIL_ALIGN * Math.max(1, Math.ceil(L / TAIL_ALIGN / 16));
}

/** The plan a group of cells runs on: the whole sequence (start 0), or the tokens from a cut on. */
interface Segment {
  readonly plan: ForwardPlan;
  readonly start: number;
  /** A cell's logits from row `from` of the plan's block i to its end: lm_head, then the per-row effects. Made once per (block, from). */
  readonly tails: Map<string, Dispatch[]>;
}

/** The tokens × layers map of ablate-write effects, as ablationSweep's (float64) but on the GPU. */
export async function webgpuAblationSweep(model: WebGpuModel, ids: ArrayLike<number>, options: WebGpuSweepOptions = {}): Promise<AblationSweep> {
  const { device } = model.weights;
  const c = model.config;
  const L = ids.length, V = c.vocabSize, H = c.dModel;
  const layers = options.layers ?? Array.from({ length: c.nLayer }, (_, i) => i);
  const tokens = options.tokens ?? Array.from({ length: L }, (_, t) => t);
  for (const t of tokens) if (!Number.isInteger(t) || t < 0 || t >= L) throw new RangeError(`token ${t} is outside the ${L}-token sample`);
  const batch = options.batch ?? 32;
  const software = model.software;
  // An empty ablate-write in every swept layer: the scans read edit words, all w_t = 1 (the clean run) until a cell writes its 0.
  const edits = new Map(layers.map((l) => [l, { scan: { noWrite: new Set<number>() } }] as const));
  // Cuts need every layer a cell runs to continue from its carries, and the stream alone between layers.
  const firstLayer = Math.min(...layers);
  const cuttable = !model.weights.layers.some((l) => l.readsEmbeddings || (l.index >= firstLayer && !l.stateCarried));
  const step = cutStep(L);
  const cuts = cuttable ? [...new Set(tokens.map((s) => s - (s % step)))].filter((t) => t > 0).sort((a, b) => b - a) : [];
  // The clean run keeps each cut's carries: h and conv_state after c − 1 of the layers from the first swept on.
  const carries = cuts.length ? { capture: { layers: Array.from({ length: c.nLayer - firstLayer }, (_, i) => firstLayer + i), quantities: ['h', 'conv_state'] as const }, statesAt: cuts.map((t) => t - 1) } : {};
  const plan = await createForwardPlan(model.weights, { tokens: L, k: 1, software, edits, ...(options.blockRows ? { logitsBlockBytes: options.blockRows * 4 * V } : {}), ...carries, pipelines: model.pipelines });
  const owned: GPUBuffer[] = [];
  const buffer = (label: string, bytes: number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST) => {
    const b = device.createBuffer({ label, size: Math.max(16, bytes), usage });
    owned.push(b);
    return b;
  };
  const cache = new KernelCache(device, model.pipelines);
  const blocksOf = (p: ForwardPlan) => p.head.filter((h) => h.block).map((h) => h.block!);
  try {
    for (const l of layers) if (!plan.writeMultipliers[l]) throw new RangeError(`layer ${l} has no scan whose writes could be ablated`);
    const blocks = blocksOf(plan);
    const cleanStreams = new Map(layers.map((l) => [l, buffer(`clean stream into layer ${l}`, 4 * L * H)]));
    const cleanLogits = blocks.map((b, i) => buffer(`clean logits block ${i}`, 4 * b.rows[1] * V));
    const perRow = buffer('per-row KL and Δloss', 4 * 2 * L);
    const cleanStates = buffer('clean states at the cuts', plan.captures.length ? plan.readbackBytes : 0);
    const cellInfo = buffer('cell', 8);
    const cells = layers.length * tokens.length;
    const results = buffer('cell means', 4 * 2 * cells);
    const readback = buffer('cell means readback', 4 * 2 * cells, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    // A cut's cells read their clean rows from one buffer of all L: with the logits in blocks, no cuts.
    const groups = blocks.length === 1 ? cuts : [];
    const tail = (seg: Segment, i: number, from: number): Dispatch[] => {
      const [start, count] = blocksOf(seg.plan)[i].rows;
      const key = `${i}:${from}`;
      let d = seg.tails.get(key);
      if (!d) {
        const rows = start + count - from;
        // Rows are the sequence's (t = seg.start + from + r) in the per-row effects, the clean logits and the ids.
        const clean = seg.start === 0 ? i : 0;
        const effect = cache.dispatch(`effect rows ${seg.start + from}…`, effectRowKernel(software), [rows, 1], { Ablated: { buffer: seg.plan.logitsBlock }, Clean: { buffer: cleanLogits[clean] }, Ids: { buffer: plan.ids }, result: { buffer: perRow } }, { vocab: V, rowOffset: seg.start + from, cleanRowOffset: seg.start + from - blocks[clean].rows[0], seqLen: L });
        seg.tails.set(key, (d = [...seg.plan.lmHeadRows(from, rows, seg.plan.logitsBlock), effect]));
      }
      return d;
    };
    const cellMean = cache.dispatch('cell means', cellMeanKernel(software), [1, 1], { Rows: { buffer: perRow }, Cell: { buffer: cellInfo }, result: { buffer: results } }, { seqLen: L });

    device.queue.writeBuffer(plan.ids, 0, Int32Array.from(ids));
    await validated(device, async () => {
      encodeClean(plan, cleanStreams, cleanStates, blocks.map((b, i) => ({ lmHead: b.lmHead, clean: cleanLogits[i], bytes: 4 * b.rows[1] * V })));
      let inFlight: Promise<unknown> | undefined;
      let done = 0;
      const runCells = async (seg: Segment, inGroup: (s: number) => boolean) => {
        const segBlocks = blocksOf(seg.plan);
        const setWrite = (layer: number, t: number, w: number) => {
          for (const m of seg.plan.writeMultipliers[layer]!) device.queue.writeBuffer(m.buffer, m.offset + 4 * (t - seg.start), new Float32Array([w]));
        };
        let previous: [number, number] | undefined;
        for (let i = 0; i < layers.length; i++) {
          const layer = layers[i];
          for (let j = 0; j < tokens.length; j++) {
            const s = tokens[j];
            if (!inGroup(s)) continue;
            if (previous) setWrite(previous[0], previous[1], 1);
            setWrite(layer, s, 0);
            previous = [layer, s];
            device.queue.writeBuffer(cellInfo, 0, new Int32Array([s, i * tokens.length + j]));
            const encoder = device.createCommandEncoder({ label: `sweep cell ${layer}·${s}` });
            encoder.copyBufferToBuffer(cleanStreams.get(layer)!, 4 * seg.start * H, seg.plan.layerInputs[layer], 0, 4 * (L - seg.start) * H);
            const pass = encoder.beginComputePass();
            record(pass, seg.plan.layers.slice(layer).flat());
            record(pass, seg.plan.head[0].dispatches);
            const local = s - seg.start;
            const first = segBlocks.findIndex((b) => local < b.rows[0] + b.rows[1]);
            record(pass, tail(seg, first, Math.max(segBlocks[first].rows[0], local - (local % TAIL_ALIGN))));
            for (let b = first + 1; b < segBlocks.length; b++) record(pass, tail(seg, b, segBlocks[b].rows[0]));
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
      };
      // The latest cut first: the whole plan's cells, which overwrite its state slots, come last.
      for (const cut of groups) {
        const part = await createForwardPlan(model.weights, { tokens: L - cut, k: 1, software, edits, carryIn: true, pipelines: model.pipelines });
        try {
          copyCarries(plan, cleanStates, cut, part);
          await runCells({ plan: part, start: cut, tails: new Map() }, (s) => s - (s % step) === cut);
          // Its buffers go once its cells have run.
          await gpuSettled(device.queue.onSubmittedWorkDone());
        } finally {
          part.destroy();
        }
      }
      await runCells({ plan, start: 0, tails: new Map() }, (s) => !groups.includes(s - (s % step)));
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

/**
 * Each layer's state after token cut − 1 of the clean run (`whole`'s h and conv_state captures,
 * one slot per statesAt position, kept in `states` at their readback offsets) into `part`'s
 * carryIn: `part`'s tokens 0… are the sequence's cut….
 */
function copyCarries(whole: ForwardPlan, states: GPUBuffer, cut: number, part: ForwardPlan): void {
  const slot = whole.statesAt.indexOf(cut - 1);
  if (slot < 0) throw new Error(`the clean run kept no states after token ${cut - 1}`);
  const encoder = whole.device.createCommandEncoder({ label: `carries at ${cut}` });
  for (const { layer, name, source, at } of whole.captures) {
    const carry = part.carryIn[layer];
    const into = name === 'h' ? carry?.h : name === 'conv_state' ? carry?.conv : undefined;
    const bytes = source.range.size / whole.statesAt.length;
    if (!into || into.size !== bytes) throw new Error(`layer ${layer}: the ${name} kept (${bytes} bytes a position) does not fit its carry (${into?.size ?? 'none'})`);
    encoder.copyBufferToBuffer(states, at + slot * bytes, into.buffer, into.offset, bytes);
  }
  whole.device.queue.submit([encoder.finish()]);
}

/** The clean run: each swept layer's input stream kept, the plan's captures (the cuts' carries) at their readback offsets in `states`, and each block of the clean logits. */
function encodeClean(plan: ForwardPlan, streams: ReadonlyMap<number, GPUBuffer>, states: GPUBuffer, blocks: readonly { lmHead: readonly Dispatch[]; clean: GPUBuffer; bytes: number }[]): void {
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
    // A layer's captures may be scratch the next layer reuses: copied out as the forward copies them.
    for (const c of plan.captures) if (c.layer === layer) encoder.copyBufferToBuffer(c.source.range.buffer, c.source.range.offset, states, c.at, c.source.range.size);
  });
  pass(plan.head[0].dispatches);
  for (const b of blocks) {
    pass(b.lmHead);
    encoder.copyBufferToBuffer(plan.logitsBlock, 0, b.clean, 0, b.bytes);
  }
  device.queue.submit([encoder.finish()]);
}
