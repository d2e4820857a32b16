/**
 * A forward plan: every buffer, pipeline and bind group that a forward of `tokens` tokens needs,
 * created once for a model and a sequence length. A forward (forward.ts) then only writes the
 * token ids, records the dispatches into one command encoder, submits once and maps one
 * readback buffer: the next-token predictions, followed by the internals asked for at plan time.
 */
import { resolvePositions } from '../internals';
import type { LayerEdit } from '../interventions';
import type { LayerCarry } from '../layers/kind';
import { combineDispatch } from './elementwise';
import { scanEdited, steerRows } from './edits';
import { checkPatch, scanPatchWords } from './patch';
import { editWords } from './scanShaders';
import { scanChannels } from '../model/config';
import { defaultChunkLength } from './selectiveScan';
import { embeddingKernel, EMBEDDING_THREADS } from './embedding';
import { KernelCache, type Dispatch, type PipelineCache } from './kernel';
import { CAPTURE_NAMES, type CaptureName, type CaptureSource, type CarryIn, type LayerContext } from './layer';
import { matmulDispatches } from './matmul';
import { rmsNormKernel, rmsNormWorkgroups } from './rmsNorm';
import { predictionWords, topKKernel } from './topK';
import { gpuSettled } from './settle';
import type { GpuWeights } from './weights';

export interface ForwardPlanOptions {
  readonly tokens: number;
  /** Predictions per position (default 10). */
  readonly k?: number;
  /** Internals copied out by every forward of the plan: these quantities of these layers. */
  readonly capture?: {
    readonly layers: readonly number[];
    readonly quantities: readonly CaptureName[];
    /** Only these tokens' rows, [start, end) (default all): h and conv_state, kept at statesAt, are not cut. */
    readonly tokens?: readonly [start: number, end: number];
  };
  /** Token positions whose states h and conv_state the captured layers keep (negative counts from the end). */
  readonly statesAt?: readonly number[];
  /** Also read back the [L, V] logits (the CLI's dump), besides the top-k. */
  readonly logits?: boolean;
  /**
   * A CPU implementation (SwiftShader): the scan runs as one chunk, the fastest there, and the
   * cooperative kernels as one invocation per workgroup (kernel.ts: cooperativeThreads).
   */
  readonly software?: boolean;
  /** Tokens per scan chunk, overriding the device's default (≥ tokens: one fused pass). */
  readonly chunkLength?: number;
  /**
   * Bytes of logits computed at a time (default 256 MiB, at most the device's binding limit):
   * the lm_head and the top-k run block by block over the sequence.
   */
  readonly logitsBlockBytes?: number;
  /** Pipelines compiled by earlier plans of the model, reused (and added to) by this one. */
  readonly pipelines?: PipelineCache;
  /** Interventions per layer (ForwardOptions.edits), applied as the float64 reference applies them (edits.ts). */
  readonly edits?: ReadonlyMap<number, LayerEdit>;
  /**
   * Each Mamba layer starts from a state in buffers of the plan's own (ForwardPlan.carryIn), zero
   * until written: a chunk of a long run continuing from the chunk before (the reference's LayerCarry).
   */
  readonly carryIn?: boolean;
  /**
   * `ids` holds one id more than `tokens`, the token after the plan's last (a chunk of a longer
   * sequence): the last row's next-token log-probability and rank come from it, without running
   * that token through the model (running it costs a GEMM tile row more: 2,049 rows are 17 of
   * matmul.ts's 128-row tiles, 2,048 are 16).
   */
  readonly nextId?: boolean;
}

export interface CaptureCopy {
  readonly layer: number;
  readonly name: CaptureName;
  readonly source: CaptureSource;
  /** Byte offset in the readback buffer. */
  readonly at: number;
}

/** A step of the head: norm_f, or one block of rows through lm_head and the top-k. */
export interface HeadStep {
  readonly dispatches: readonly Dispatch[];
  /** A block's rows [start, count] and its lm_head alone, into ForwardPlan.logitsBlock (the sweep reads it without the top-k). */
  readonly block?: { readonly rows: readonly [start: number, count: number]; readonly lmHead: readonly Dispatch[] };
  /** Where this block's logits go in the logits readback (bytes), when the plan reads them back. */
  readonly logitsAt?: number;
  readonly logitsBytes?: number;
}

export interface ForwardPlan {
  readonly device: GPUDevice;
  readonly weights: GpuWeights;
  readonly tokens: number;
  readonly k: number;
  readonly ids: GPUBuffer;
  /** Embedding, then each layer's dispatches, then final norm, lm_head and top-k blocks. */
  readonly embed: readonly Dispatch[];
  readonly layers: readonly (readonly Dispatch[])[];
  readonly head: readonly HeadStep[];
  readonly predictions: GPUBuffer;
  readonly captures: readonly CaptureCopy[];
  /** Positions of the captured states (sorted, distinct). */
  readonly statesAt: Int32Array;
  /** MAP_READ: predictionWords(tokens, k) words, then the captures. */
  readonly readback: GPUBuffer;
  readonly readbackBytes: number;
  /** The head's logits block, rows of V (HeadStep.block), ForwardPlanOptions.logitsBlockBytes at most. */
  readonly logitsBlock: GPUBuffer;
  /**
   * lm_head over rows [m0, m0 + rows) of norm_f's output into `into` (rows × V), made now and owned
   * by the plan: the head's blocks are made so, and the sweep's cells, which start at their own token.
   */
  lmHeadRows(m0: number, rows: number, into: GPUBuffer): Dispatch[];
  /** The logits block the head computes into, and the MAP_READ buffer of all [L, V] logits: only when asked for. */
  readonly logits?: { readonly block: GPUBuffer; readonly readback: GPUBuffer };
  readonly pipelineCount: number;
  /**
   * Per layer, where its scan's per-token write multipliers w_t are (byte offset of token 0 in a
   * Params buffer): a layer the plan was given a scan edit for (edits.ts: scanEdited) has them.
   * The sweep rewrites them per cell.
   */
  readonly writeMultipliers: readonly (readonly { readonly buffer: GPUBuffer; readonly offset: number }[] | undefined)[];
  /** The stream entering each layer (after its steering, if any). */
  readonly layerInputs: readonly GPUBuffer[];
  /**
   * With ForwardPlanOptions.carryIn, per layer, its state entering the sequence (undefined for a
   * layer without a scan): h in the layout of a state capture's slot (sources.h), conv in that of
   * a conv_state capture's, so copying one plan's capture at a token into another's carryIn
   * continues the sequence after that token. Empty without carryIn.
   */
  readonly carryIn: readonly (CarryIn | undefined)[];
  destroy(): void;
}

/** Owner of the plan's split-K scratch in LayerContext.shared. */
const partialBuffers = {};

const DEFAULT_LOGITS_BLOCK_BYTES = 256 * 2 ** 20;

export async function createForwardPlan(weights: GpuWeights, options: ForwardPlanOptions): Promise<ForwardPlan> {
  const { device, config: c } = weights;
  const L = options.tokens;
  const k = options.k ?? 10;
  const V = c.vocabSize, H = c.dModel;
  if (!Number.isInteger(L) || L < 1) throw new RangeError(`a forward plan needs at least one token, got ${L}`);
  if (L > device.limits.maxComputeWorkgroupsPerDimension) throw new RangeError(`${L} tokens exceed the device's ${device.limits.maxComputeWorkgroupsPerDimension} workgroups per dimension`);
  if (!Number.isInteger(k) || k < 1 || k > 12 || k > V) throw new RangeError(`predictions: k must be 1 … ${Math.min(12, V)}, got ${k}`);
  const capture = options.capture ?? { layers: [], quantities: [] };
  for (const q of capture.quantities) if (!(CAPTURE_NAMES as readonly string[]).includes(q)) throw new RangeError(`the native forward cannot capture "${q}" (it captures ${CAPTURE_NAMES.join(', ')})`);
  for (const l of capture.layers) if (!Number.isInteger(l) || l < 0 || l >= c.nLayer) throw new RangeError(`layer ${l} is outside the model's ${c.nLayer} layers`);
  const captured = new Set(capture.layers);
  for (const [layer, e] of options.edits ?? []) {
    if (!Number.isInteger(layer) || layer < 0 || layer >= c.nLayer) throw new RangeError(`an intervention's layer ${layer} is outside the model's ${c.nLayer} layers`);
    if (e.patch) checkPatch(layer, e.patch, L);
  }
  const quantities = new Set(capture.quantities);
  const statesAt = (quantities.has('h') || quantities.has('conv_state')) && captured.size ? resolvePositions(options.statesAt ?? [], L) : new Int32Array(0);
  const [t0, t1] = capture.tokens ?? [0, L];
  if (!Number.isInteger(t0) || !Number.isInteger(t1) || t0 < 0 || t1 > L || t0 >= t1) throw new RangeError(`capture tokens [${t0}, ${t1}) are not a range within the ${L} tokens`);
  /** A per-token source's rows t0 … t1 − 1: rows are contiguous in every buffer and plane. */
  const rowsOf = (name: CaptureName, source: CaptureSource): CaptureSource => {
    if (name === 'h' || name === 'conv_state' || (t0 === 0 && t1 === L)) return source;
    const rowBytes = source.range.size / L;
    return { range: { buffer: source.range.buffer, offset: source.range.offset + t0 * rowBytes, size: (t1 - t0) * rowBytes }, shape: [t1 - t0, ...source.shape.slice(1)] };
  };

  const owned: GPUBuffer[] = [];
  const allocate = (label: string, elements: number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST) => {
    const size = 4 * Math.max(1, elements);
    if (size > device.limits.maxStorageBufferBindingSize) throw new RangeError(`${label}: ${size} bytes exceed the device's storage binding limit (${device.limits.maxStorageBufferBindingSize})`);
    const b = device.createBuffer({ label, size, usage });
    owned.push(b);
    return b;
  };
  const mapped = (label: string, bytes: number) => {
    if (bytes > device.limits.maxBufferSize) throw new RangeError(`${label}: ${bytes} bytes exceed the device's largest buffer (${device.limits.maxBufferSize}): capture fewer layers or tokens`);
    const b = device.createBuffer({ label, size: Math.max(4, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    owned.push(b);
    return b;
  };
  const cache = new KernelCache(device, options.pipelines);
  const destroy = () => {
    owned.forEach((b) => b.destroy());
    cache.uniformBuffers.forEach((b) => b.destroy());
  };
  const software = options.software ?? false;
  const sharedByOwner = new Map<object, Map<string, unknown>>();
  // One encoder for the plan's own copies (each state-capturing layer's [A | D] into its slots buffer).
  const setup = device.createCommandEncoder({ label: 'forward plan set-up' });
  const slots = new Float32Array(L).fill(-1);
  statesAt.forEach((t, k) => (slots[t] = k));
  const noSlots = new Float32Array(L).fill(-1);
  // Where each edited layer's per-token write multipliers are (the sweep rewrites them per cell), by the layer being built.
  const writeMultipliers: { buffer: GPUBuffer; offset: number }[][] = [];
  let building = -1;
  const ctx: LayerContext = {
    cache,
    L,
    software,
    weights: weights.format,
    statesAt,
    carryIn: options.carryIn ?? false,
    chunkLen: options.chunkLength ?? defaultChunkLength(L, Math.max(1, scanChannels(c)), software),
    allocate: (label, elements) => allocate(label, elements),
    constant(label, data) {
      const b = allocate(label, data.length);
      device.queue.writeBuffer(b, 0, data);
      return b;
    },
    shared<T>(owner: object, make: () => T, key = ''): T {
      // Each owner stores one type of value, made by its own `make`.
      let byKey = sharedByOwner.get(owner);
      if (!byKey) sharedByOwner.set(owner, (byKey = new Map()));
      if (!byKey.has(key)) byKey.set(key, make());
      return byKey.get(key) as T;
    },
    partials(elements) {
      // The split-K products run one after another: one scratch buffer per size serves them all.
      const bySize = ctx.shared(partialBuffers, () => new Map<number, GPUBuffer>());
      let b = bySize.get(elements);
      if (!b) bySize.set(elements, (b = allocate('matmul partials', elements)));
      return b;
    },
    scanParams(params, aAndD, { states, scan, stateSize, patch }) {
      const edited = scanEdited(scan);
      const initial = ctx.carryIn;
      if (!states && !edited && !initial && !patch) return { params };
      const words = edited ? editWords(L, scan!) : new Float32Array(0);
      const initialAt = aAndD + L + words.length;
      // patch-state's token and state follow the initial state (patch.ts).
      const patchWords = patch ? scanPatchWords(`layer ${building}`, patch, stateSize, scan?.reset) : new Float32Array(0);
      const patchAt = initialAt + (initial ? stateSize : 0);
      const b = allocate(`A|D|slots${edited ? '|edits' : ''}${initial ? '|initial state' : ''}${patch ? '|patch' : ''}`, patchAt + patchWords.length);
      setup.copyBufferToBuffer(params, 0, b, 0, 4 * aAndD);
      device.queue.writeBuffer(b, 4 * aAndD, states ? slots : noSlots);
      if (edited) {
        device.queue.writeBuffer(b, 4 * (aAndD + L), words);
        (writeMultipliers[building] ??= []).push({ buffer: b, offset: 4 * (aAndD + L) });
      }
      if (patch) device.queue.writeBuffer(b, 4 * patchAt, patchWords);
      // The initial state's words are zero-initialised until a carry is written there.
      return { params: b, patched: !!patch, ...(initial ? { initial: { buffer: b, offset: 4 * initialAt, size: 4 * stateSize } } : {}) };
    },
  };

  const build = (): ForwardPlan => {
    const ids = allocate('token ids', L + (options.nextId ? 1 : 0));
    const hidden = [allocate('hidden A', L * H), allocate('hidden B', L * H)] as const;
    // A model whose layers read the embedding output keeps it in a buffer of its own, layer 0's input; else it is hidden A.
    const embeddings = weights.layers.some((l) => l.readsEmbeddings) ? allocate('embeddings', L * H) : undefined;
    const input = (i: number) => (embeddings ? (i === 0 ? embeddings : hidden[(i - 1) % 2]) : hidden[i % 2]);
    const output = (i: number) => (embeddings ? hidden[i % 2] : hidden[(i + 1) % 2]);
    const embed = [cache.dispatch('embedding', embeddingKernel(weights.format), cache.flatWorkgroups(L * H, EMBEDDING_THREADS), { Ids: { buffer: ids }, Table: { buffer: weights.embedding }, result: { buffer: input(0) } }, { rows: L, width: H, scale: weights.embeddingScale })];
    const layerInputs: GPUBuffer[] = [];
    const built = weights.layers.map((layer, i) => {
      const keep = captured.has(i);
      const edit = options.edits?.get(i);
      building = i;
      // Steering: the layer reads (and captures as hidden_in) its input plus the α·v rows, in a buffer of its own.
      const steer = edit?.steer?.length ? { rows: ctx.constant(`layer ${i} steer`, steerRows(L, H, edit)), stream: allocate(`layer ${i} steered stream`, L * H) } : undefined;
      const hIn = steer?.stream ?? input(i);
      layerInputs.push(hIn);
      const b = layer.build({ index: i, hIn, hOut: output(i), states: keep && statesAt.length > 0, out: keep && quantities.has('out'), pattern: keep && quantities.has('attn_pattern'), embeddings, edit }, ctx);
      if (!steer) return b;
      return { ...b, dispatches: [combineDispatch(cache, `layer ${i} steer`, L * H, { buffer: input(i) }, 1, { buffer: steer.stream }, { range: { buffer: steer.rows }, beta: 1 }), ...b.dispatches] };
    });

    const last = output(c.nLayer - 1);
    const normedF = allocate('norm_f', L * H);
    const blockBytes = Math.min(options.logitsBlockBytes ?? DEFAULT_LOGITS_BLOCK_BYTES, device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    const blockRows = Math.max(1, Math.min(L, Math.floor(blockBytes / (4 * V))));
    const block = allocate('logits block', blockRows * V);
    const logits = options.logits ? { block, readback: mapped('logits readback', 4 * L * V) } : undefined;
    const predictions = allocate('predictions', predictionWords(L, k));
    const head: HeadStep[] = [{ dispatches: [cache.dispatch('norm_f', rmsNormKernel({ software }), rmsNormWorkgroups(L, H, H), { X: { buffer: last }, Weight: { buffer: weights.normF }, result: { buffer: normedF } }, { width: H, groupSize: H, eps: c.eps })] }];
    const lmHeadRows = (m0: number, rows: number, into: GPUBuffer) =>
      matmulDispatches(ctx, `lm_head rows ${m0}…`, { bias: false, softplus: false, residual: false, planes: [V], software, weights: weights.format }, { M: rows, N: V, K: H, aOffset: m0 * H },
        { X: { buffer: normedF }, W: { buffer: weights.lmHead }, Y: { buffer: into } });
    for (let m0 = 0; m0 < L; m0 += blockRows) {
      const rows = Math.min(blockRows, L - m0);
      const lmHead = lmHeadRows(m0, rows, block);
      head.push({
        block: { rows: [m0, rows], lmHead },
        dispatches: [
          ...lmHead,
          cache.dispatch(`top-${k} rows ${m0}…`, topKKernel(k, software), [rows, 1], { Logits: { buffer: block }, Ids: { buffer: ids }, result: { buffer: predictions } }, { vocab: V, rowOffset: m0, seqLen: L, idsLen: L + (options.nextId ? 1 : 0) }),
        ],
        ...(logits ? { logitsAt: 4 * m0 * V, logitsBytes: 4 * rows * V } : {}),
      });
    }

    const captures: CaptureCopy[] = [];
    let at = 4 * predictionWords(L, k);
    for (const layer of [...captured].sort((a, b) => a - b)) {
      for (const name of quantities) {
        const source = built[layer].sources[name];
        // 'h' and 'conv_state' without positions, and 'out' are only there when asked for; nothing else is ever missing.
        if (!source) continue;
        const rows = rowsOf(name, source);
        captures.push({ layer, name, source: rows, at });
        at += rows.range.size;
      }
    }
    const readback = mapped('readback', at);
    device.queue.submit([setup.finish()]);
    return {
      device,
      weights,
      tokens: L,
      k,
      ids,
      embed,
      layers: built.map((b) => b.dispatches),
      head,
      predictions,
      logitsBlock: block,
      lmHeadRows,
      captures,
      statesAt,
      readback,
      readbackBytes: at,
      ...(logits ? { logits } : {}),
      pipelineCount: cache.pipelineCount,
      writeMultipliers: weights.layers.map((_, i) => writeMultipliers[i]),
      layerInputs,
      carryIn: ctx.carryIn ? built.map((b) => b.carryIn) : [],
      destroy,
    };
  };

  // Validation and allocation errors surface here, as one exception, not as a console warning later.
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let plan: ForwardPlan | undefined;
  let thrown: unknown;
  try {
    plan = build();
  } catch (e) {
    thrown = e;
  }
  const [validation, outOfMemory] = await gpuSettled(Promise.all([device.popErrorScope(), device.popErrorScope()]));
  const error = validation ?? outOfMemory;
  if (thrown || error || !plan) {
    destroy();
    throw thrown ?? new Error(`the WebGPU forward plan could not be built: ${error?.message}`);
  }
  return plan;
}

/**
 * Each layer's carry (its state and conv context entering the sequence; absent: zeros) into the
 * plan's carryIn, written before its next submit: a plan built with carryIn serves every chunk
 * of its length. A layer without a scan has no carry to take.
 */
export function writeCarries(plan: ForwardPlan, carries: readonly (LayerCarry | undefined)[] | undefined): void {
  plan.carryIn.forEach((c, i) => {
    if (!c) return;
    const carry = carries?.[i];
    plan.device.queue.writeBuffer(c.h.buffer, c.h.offset, carry ? Float32Array.from(carry.h) : new Float32Array(c.h.size / 4));
    plan.device.queue.writeBuffer(c.conv.buffer, c.conv.offset, carry?.conv ? Float32Array.from(carry.conv.data) : new Float32Array(c.conv.size / 4));
  });
}
