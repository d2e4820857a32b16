/**
 * Compute in the webview: the selected backend, the model the host sent (weights arrive once per
 * model), and forward runs on it. 'webgpu' is the native WebGPU engine (src/engine/webgpu); the
 * others are tfjs backends. Once uploaded, the weights live only in the engine: the JS copy the
 * host sent is let go (0.5 GB for mamba-130m), and the analyses keep just each layer's scan view
 * (A_log and D). A switch between tfjs backends moves the weights from the old backend to the
 * new one; a switch between tfjs and the native engine lets them go, and the host sends them
 * again (ModelReleasedError).
 */
import * as tf from '@tensorflow/tfjs-core';
import { LimitError, MambaScopeError, ModelReleasedError } from '../src/engine/errors';
import { attentionPatternValues, keptValues, type ForwardOptions, type ForwardResult, type InternalName } from '../src/engine/internals';
import { ATTENTION_MAX_TOKENS } from './analysis/attention';
import { layerKinds } from '../src/engine/layers';
import type { LoadedModel } from '../src/engine/model/graph';
import { isLanguageModelConfig, type LanguageModelConfig, type ModelConfig } from '../src/engine/model/config';
import { loadModel, openModel, streamValues, weightValues, type StreamedModel } from '../src/engine/model/load';
import type { ScanView } from '../src/engine/layers/kind';
import { createTfModel, moveTfModel, tfjsForward, type TfModel } from '../src/engine/tfjs/forward';
import { WebGpuModel } from '../src/engine/webgpu/model';
import { storedFormat, type WeightFormat } from '../src/engine/webgpu/weightFormat';
import { type BackendInfo, type BackendPreference, type LoadModelParams, type RequestContext, type RunParams, type TensorMessage } from '../src/protocol';
import { HostWeightStore } from './hostWeights';
import { isSoftwareAdapter, selectBackend, type SelectedBackend } from './backend';
import { NEXT_TOKEN_K, type ModelContext, type WindowInternals } from './inspection';
import { longRunBytes, LongRunBuilder } from './long/builder';
import type { LongRun } from './long/longRun';
import { LONG_CHUNK, longRunInChunks, SUMMARY_INTERNALS, tfjsChunkForward, webgpuChunkForward, windowFromCheckpoint, type ChunkForward } from './long/chunkedLong';
import type { TokenWindow } from './long/window';

/**
 * The internals the views use (the state view rescans from delta, u and B; a hybrid's paths and
 * attention patterns, which pure Mamba layers do not record, feed the paths and attention views). y is not among them:
 * no view draws it, and at mamba-130m × 2048 tokens it would cost 302 MB; `mamba-scope inspect`
 * writes it to a dump.
 */
const PANEL_INTERNALS: readonly InternalName[] = ['z', 'u', 'delta', 'B', 'C', 'h', 'attn_pattern', 'ssm_out', 'attn_out', 'mlp_out', 'moe_experts', 'moe_weights'];

/** A hybrid's attention layers keep their pattern for the attention view up to the length it draws. */
function keepsPatterns(tokens: number): boolean {
  return tokens <= ATTENTION_MAX_TOKENS;
}

/** The page's memory budget (issue 7: the webview stays under 2 GB), and what the page itself, the views' canvases and a run's passing copies take of it. */
const PAGE_BYTES = 2e9;
const PAGE_RESERVE_BYTES = 350e6;

/** Bytes in whole megabytes, rounded up: what the refusals quote. */
export function mb(bytes: number): number {
  return Math.ceil(bytes / 1e6);
}

/** The layers a run keeps the internals of, and their bytes; `note` when some were left out. */
export interface RunPlan {
  readonly bytes: number;
  readonly layers: readonly number[];
  readonly note?: string;
}

/** Layers of a model: a language model's, or the simplified block's one. */
function layerCountOf(config: ModelConfig): number {
  return isLanguageModelConfig(config) ? config.nLayer : 1;
}

/** `n` of `items` (n ≥ 1), evenly spaced from the first to the last. */
function spread<T>(items: readonly T[], n: number): T[] {
  if (n === 1) return [items[0]];
  return Array.from({ length: n }, (_, i) => items[Math.round((i * (items.length - 1)) / (n - 1))]);
}

/** Where the weights are: a tfjs model, or the native engine's buffers on a GPUDevice. */
type Engine = { readonly kind: 'tfjs'; model: TfModel } | { readonly kind: 'webgpu-native'; readonly model: WebGpuModel; readonly device: GPUDevice };

export class ComputeSession {
  private backend: { preference: BackendPreference; selected: Promise<SelectedBackend> } | null = null;
  private loaded: { context: ModelContext; engine: Engine; backend: SelectedBackend; streamed: boolean } | null = null;
  /** Told each time a streamed model's layer arrives from the host: the progress of the upload or the forward under way. */
  private onLayerRead: ((layer: number) => void) | undefined;
  /** Runs and uploads one at a time: they share the backend's memory. */
  private queue: Promise<unknown> = Promise.resolve();

  /**
   * `onModelLost`: the weights are gone (a backend switch could not move them); the host must send them again.
   * `readWeight`: one tensor of a streamed model, from the host.
   */
  constructor(
    private wasmPath: string | undefined,
    private readonly onModelLost: (modelId: string) => void,
    private readonly readWeight: (modelId: string, name: string) => Promise<TensorMessage>,
  ) {}

  get model(): ModelContext | null {
    return this.loaded?.context ?? null;
  }

  setWasmPath(path: string | undefined): void {
    this.wasmPath = path;
  }

  /** Which engine holds the weights, if a model is loaded. */
  get engine(): Engine['kind'] | null {
    return this.loaded?.engine.kind ?? null;
  }

  /** The backend for `preference`, selected once per preference. */
  async ensureBackend(preference: BackendPreference): Promise<BackendInfo> {
    return (await this.select(preference)).info;
  }

  private select(preference: BackendPreference): Promise<SelectedBackend> {
    if (this.backend?.preference !== preference) {
      const previous = this.backend?.selected;
      const selected = this.serial(async () => {
        // The old choice's device goes unless the loaded model still runs on it.
        const old = await previous?.catch(() => undefined);
        if (old?.device && old.device !== this.nativeDevice()) old.device.destroy();
        return selectBackend(preference, this.wasmPath);
      });
      this.backend = { preference, selected };
      // A failed selection is retried next time rather than remembered.
      selected.catch(() => {
        if (this.backend?.selected === selected) this.backend = null;
      });
    }
    return this.backend.selected;
  }

  private nativeDevice(): GPUDevice | undefined {
    const e = this.loaded?.engine;
    return e?.kind === 'webgpu-native' ? e.device : undefined;
  }

  /**
   * Puts the model the host sent on the selected engine. A streamed model (params.streamed) is read
   * from the host a layer at a time: the native engine uploads every layer in turn and holds them
   * all on the GPU; tfjs keeps only the backbone and reads each layer again in every forward.
   */
  async loadModel(params: LoadModelParams, preference: BackendPreference, ctx: RequestContext): Promise<{ backend: BackendInfo; uploadMs: number }> {
    const backend = await this.select(preference);
    ctx.throwIfCancelled();
    ctx.progress({ stage: 'reading weights', done: 0, total: 1 });
    const store = this.hostStore(params);
    const scans: (ScanView<'float32'> | undefined)[] = [];
    const model = params.streamed ? observeLayers(await openModel(params.config as LanguageModelConfig, store, 'float32'), scans, this.layerReadHook()) : await loadModel(params.config, store, 'float32');
    if ('layers' in model) scans.push(...model.layers.map((l) => l.scanView()));
    ctx.throwIfCancelled();
    return this.serial(async () => {
      this.release();
      const start = performance.now();
      const layerCount = layerCountOf(model.config);
      this.onLayerRead = (i) => ctx.progress({ stage: 'uploading weights', done: i, total: layerCount });
      try {
        const engine = await this.upload(model, backend, storedFormat(store));
        const layerLabels = layerKinds(model.config).map((k) => k.label);
        const context: ModelContext = { id: params.modelId, name: params.name, config: model.config, scans, layerLabels, vocab: params.vocab ?? null };
        this.loaded = { context, engine, backend, streamed: !!params.streamed };
        return { backend: backend.info, uploadMs: performance.now() - start };
      } finally {
        this.onLayerRead = undefined;
      }
    });
  }

  /*
   * The two functions a streamed model keeps for good (the store's reader and the layer hook) are
   * made here, not in loadModel: closures share their function's context, and loadModel's holds
   * the backbone's float32 copy (0.5 GB at 2.8b) that the engine has already uploaded.
   */
  private hostStore(params: LoadModelParams): HostWeightStore {
    const modelId = params.modelId;
    return new HostWeightStore(params, (name) => this.readWeight(modelId, name));
  }

  private layerReadHook(): (layer: number) => void {
    return (layer) => this.onLayerRead?.(layer);
  }

  /** `weights`: how the native engine stores the projections (a 16-bit checkpoint in its own format: its exact values in half the GPU memory). */
  private async upload(model: LoadedModel<'float32'> | StreamedModel<'float32'>, backend: SelectedBackend, weights: WeightFormat): Promise<Engine> {
    const { device, info } = backend;
    if (!device) return { kind: 'tfjs', model: createTfModel(model) };
    const native: Engine = { kind: 'webgpu-native', model: await WebGpuModel.upload(device, model, { software: !!info.adapter && isSoftwareAdapter(info.adapter), weights }), device };
    // A lost device (driver reset, GPU process crash) takes the weights with it: the host sends them again.
    void device.lost.then(() => {
      if (this.loaded?.engine === native) this.dropModel();
    });
    return native;
  }

  private release(): void {
    const e = this.loaded?.engine;
    if (e?.kind === 'tfjs') e.model.dispose();
    if (e?.kind === 'webgpu-native') e.model.dispose();
    this.loaded = null;
  }

  /** Lets go of the weights and tells the host, which sends them again with the next run. */
  private dropModel(): void {
    const id = this.loaded?.context.id;
    this.release();
    if (id) this.onModelLost(id);
  }

  /** The engine's share of the panel's memory: tfjs tensors, or the native engine's weights on the GPU. */
  memory(): { backendBytes: number; wasmHeapBytes: number | null } {
    const e = this.loaded?.engine;
    if (e?.kind === 'webgpu-native') return { backendBytes: e.model.weights.bytes, wasmHeapBytes: null };
    const backend = tf.getBackend() ? (tf.backend() as { wasm?: { HEAPU8: Uint8Array } }) : null;
    return { backendBytes: tf.memory().numBytes, wasmHeapBytes: backend?.wasm?.HEAPU8.byteLength ?? null };
  }

  /**
   * What a run will keep for the views, planned before any work against the smaller of its
   * memory limit (mambaScope.runMemoryLimitMB) and what the page's budget leaves beside the
   * weights the engine holds in the page: every layer's internals when they fit, else as many
   * layers as fit, spread evenly over the model (`note` says which, and why); a LimitError when
   * not one layer fits.
   */
  plan(params: RunParams, tokens = params.ids.byteLength / Int32Array.BYTES_PER_ELEMENT): RunPlan {
    const loaded = this.require(params.modelId);
    const config = loaded.context.config;
    const asked = params.settings.layers ?? Array.from({ length: layerCountOf(config) }, (_, i) => i);
    const states = new Set(params.settings.statesAt ?? []).size;
    // The largest layer's share: its internals, and its attention pattern when it has one (heads × L²).
    const pattern = keepsPatterns(tokens) ? Math.max(0, ...asked.map((l) => attentionPatternValues(config, tokens, [l]))) : 0;
    const perLayer = (keptValues(config, { tokens, layers: 1, keep: PANEL_INTERNALS, states }) + pattern) * Float32Array.BYTES_PER_ELEMENT;
    const { bytes: limit, why, way } = this.limitOf(loaded, tokens, params.settings.memoryLimitMB);
    const fit = Math.floor(Math.max(0, limit) / perLayer);
    if (fit < 1) {
      throw new LimitError(params.sampleName, `${tokens} tokens keep ${mb(perLayer)} MB per layer for the panel's views, over ${why}: ${way} inspect a shorter selection (mambaScope.maxTokens cuts long samples)`);
    }
    if (fit >= asked.length) return { bytes: asked.length * perLayer, layers: asked };
    const layers = spread(asked, fit);
    const note = `kept the internals of ${fit} of ${asked.length} layers (${layers.join(', ')}): all of them would take ${mb(asked.length * perLayer)} MB, over ${why}`;
    return { bytes: layers.length * perLayer, layers, note };
  }

  /**
   * Bytes of the page's own memory the engine needs for a run: on wasm and cpu the weights it
   * holds there and the layer stream (a streamed model: the backbone, and one layer on the backend
   * and in transit), and never less than the wasm heap already is (it never shrinks);
   * on webgl and the native engine they are in GPU memory.
   */
  private inPageBytes(loaded: NonNullable<ComputeSession['loaded']>, tokens: number): number {
    const { config } = loaded.context;
    if (!isLanguageModelConfig(config) || loaded.engine.kind !== 'tfjs' || loaded.backend.info.backend === 'webgl') return 0;
    const w = weightValues(config);
    // A streamed layer is on the backend once and in the page up to three times more: its float32
    // copy as it arrives, its 16-bit wire form, and the last layer's copies not yet collected.
    const weights = loaded.streamed ? w.backbone + 4 * w.layer : w.total;
    const needed = (weights + streamValues(config, tokens)) * Float32Array.BYTES_PER_ELEMENT;
    return Math.max(needed, this.memory().wasmHeapBytes ?? 0);
  }

  async run(params: RunParams, ctx: RequestContext): Promise<{ result: ForwardResult<Float32Array>; backend: BackendInfo; forwardMs: number; note?: string }> {
    const plan = this.plan(params);
    const ids = new Int32Array(params.ids);
    const options: ForwardOptions = {
      layers: plan.layers,
      statesAt: params.settings.statesAt,
      checkCancelled: ctx.throwIfCancelled,
      // What the views draw; hidden_in/out and the [L, V] logits stay off the heap.
      keep: PANEL_INTERNALS,
      predictions: NEXT_TOKEN_K,
      attentionPattern: keepsPatterns(ids.length),
    };
    const { result, backend, forwardMs } = await this.forward(params.modelId, params.settings.backend, ids, options, ctx);
    return { result, backend, forwardMs, ...(plan.note ? { note: plan.note } : {}) };
  }

  /**
   * One forward of the loaded model with the caller's options (the interventions' runs: logits,
   * edits, the logit lens), queued behind the runs and uploads before it.
   */
  async forward(modelId: string, preference: BackendPreference, ids: Int32Array, options: ForwardOptions, ctx: RequestContext): Promise<{ result: ForwardResult<Float32Array>; backend: BackendInfo; forwardMs: number }> {
    const loaded = this.require(modelId);
    const backend = await this.select(preference);
    return this.serial(async () => {
      const engine = await this.engineFor(loaded, backend, ctx);
      const layerCount = layerCountOf(loaded.context.config);
      ctx.progress({ stage: 'forward pass', done: 0, total: loaded.streamed ? layerCount : 1 });
      // A streamed model reads each layer from the host as the forward reaches it: the progress of a long run.
      this.onLayerRead = (i) => ctx.progress({ stage: 'forward pass', done: i, total: layerCount });
      const start = performance.now();
      try {
        const result = engine.kind === 'tfjs' ? await tfjsForward(engine.model, ids, options) : await engine.model.forward(ids, options);
        return { result, backend: backend.info, forwardMs: performance.now() - start };
      } finally {
        this.onLayerRead = undefined;
      }
    });
  }

  /**
   * A long sample (more than FULL_RESOLUTION_TOKENS tokens) in chunks on the engine (tfjs or the
   * native WebGPU engine), reduced as it goes to what a long run keeps (long/builder.ts); refused before any work, with the numbers, when
   * that and one chunk's internals do not fit the run's memory limit.
   */
  async runLong(params: RunParams, threshold: number, ctx: RequestContext): Promise<{ run: LongRun; backend: BackendInfo; forwardMs: number }> {
    const loaded = this.require(params.modelId);
    const backend = await this.select(params.settings.backend);
    const ids = new Int32Array(params.ids);
    const config = loaded.context.config;
    if (!isLanguageModelConfig(config)) throw new MambaScopeError('unsupported', params.sampleName, `${loaded.context.name} is a single block: a long run needs a language model`);
    const scans = loaded.context.scans.filter((s): s is ScanView<'float32'> => s !== undefined);
    const channels = Math.max(0, ...scans.map((s) => s.channels));
    const estimate = longRunBytes({
      tokens: ids.length,
      layers: config.nLayer,
      channels,
      deltaColumns: Math.max(0, ...scans.map((s) => s.deltaWidth)),
      // A layer's carry: its state, and the conv context (K − 1 inputs as wide as the conv).
      carryValues: scans.reduce((n, s) => n + s.channels * s.stateWidth + 4 * (s.channels + 2 * s.stateWidth), 0),
      chunkLength: LONG_CHUNK,
      k: NEXT_TOKEN_K,
    });
    // One chunk's internals on the heap, and the three [chunk, D] matrices its summaries compute per layer.
    const chunkBytes = (keptValues(config, { tokens: LONG_CHUNK + 1, layers: config.nLayer, keep: SUMMARY_INTERNALS, states: 1 }) + 3 * LONG_CHUNK * channels) * Float32Array.BYTES_PER_ELEMENT;
    const { bytes: limit, why, way } = this.limitOf(loaded, LONG_CHUNK, params.settings.memoryLimitMB);
    if (estimate + chunkBytes > limit) {
      throw new LimitError(params.sampleName, `${ids.length} tokens in chunks keep ${mb(estimate)} MB of summaries, tiles and checkpoints and ${mb(chunkBytes)} MB per chunk, over ${why}: ${way} inspect fewer tokens (mambaScope.maxTokens)`);
    }
    return this.serial(async () => {
      const engine = await this.engineFor(loaded, backend, ctx);
      const start = performance.now();
      const builder = new LongRunBuilder(params, loaded.context, threshold, NEXT_TOKEN_K);
      await longRunInChunks(chunkForward(engine), ids, builder, NEXT_TOKEN_K, ctx);
      return { run: builder.finish(), backend: backend.info, forwardMs: performance.now() - start };
    });
  }

  /** A long run's window at full resolution, from the checkpoint before it: the internals of the layers that fit, as a short run keeps them. */
  async recomputeWindow(run: LongRun, w: TokenWindow, ctx: RequestContext): Promise<WindowInternals> {
    const loaded = this.require(run.params.modelId);
    const backend = await this.select(run.params.settings.backend);
    const plan = this.plan(run.params, w[1] - w[0]);
    return this.serial(async () => {
      const engine = await this.engineFor(loaded, backend, ctx);
      return windowFromCheckpoint(chunkForward(engine), run, w, { layers: plan.layers, keep: PANEL_INTERNALS }, ctx);
    });
  }

  /**
   * `work` on the native WebGPU engine's model (the batched sweep), queued like a forward; null
   * when the weights are in tfjs, whose runs go one forward at a time.
   */
  async onNativeEngine<T>(modelId: string, preference: BackendPreference, ctx: RequestContext, work: (model: WebGpuModel) => Promise<T>): Promise<T | null> {
    const loaded = this.require(modelId);
    const backend = await this.select(preference);
    return this.serial(async () => {
      const engine = await this.engineFor(loaded, backend, ctx);
      return engine.kind === 'webgpu-native' ? work(engine.model) : null;
    });
  }

  /**
   * Bytes of the page's memory left for an analysis (the interventions' logits) beside the shown
   * run's internals (`keptBytes`), under the same limit as plan(); `why` names the limit that
   * binds and `way` how to lift it, for the refusal.
   */
  spareBytes(modelId: string, tokens: number, memoryLimitMB: number, keptBytes: number): { bytes: number; why: string; way: string } {
    const l = this.limitOf(this.require(modelId), tokens, memoryLimitMB);
    return { ...l, bytes: l.bytes - keptBytes };
  }

  /** The smaller of mambaScope.runMemoryLimitMB and what the page's budget leaves beside the weights the engine holds in the page. */
  private limitOf(loaded: NonNullable<ComputeSession['loaded']>, tokens: number, memoryLimitMB: number): { bytes: number; why: string; way: string } {
    const setting = memoryLimitMB * 1e6;
    const beside = PAGE_BYTES - PAGE_RESERVE_BYTES - this.inPageBytes(loaded, tokens);
    if (setting <= beside) return { bytes: setting, why: `mambaScope.runMemoryLimitMB (${memoryLimitMB} MB)`, way: 'raise the setting mambaScope.runMemoryLimitMB, or' };
    return {
      bytes: beside,
      why: `the ${mb(Math.max(0, beside))} MB left of the panel's ${mb(PAGE_BYTES)} MB budget beside the weights it holds in the page`,
      way: 'choose a GPU backend (mambaScope.backend: its weights are not in the page), or',
    };
  }

  /** The loaded model's engine on `backend`: moved between tfjs backends, released (for the host to send again) across engines. */
  private async engineFor(loaded: NonNullable<ComputeSession['loaded']>, backend: SelectedBackend, ctx: RequestContext): Promise<Engine> {
    if (this.loaded !== loaded) throw new ModelReleasedError(loaded.context.name, 'the panel let go of the weights');
    const e = loaded.engine;
    if (e.kind === 'webgpu-native' && backend.device === e.device) return e;
    if (e.kind === 'tfjs' && !backend.device) {
      if (loaded.backend.info.backend !== backend.info.backend) await this.move(loaded, e, backend, ctx);
      loaded.backend = backend;
      return e;
    }
    this.dropModel();
    throw new ModelReleasedError(loaded.context.name, `its weights are in ${e.kind === 'tfjs' ? 'tfjs' : 'the native WebGPU engine'}, and ${backend.info.backend} runs on ${backend.device ? 'the native WebGPU engine' : 'tfjs'}: send them again`);
  }

  private require(modelId: string): NonNullable<ComputeSession['loaded']> {
    const loaded = this.loaded;
    if (!loaded || loaded.context.id !== modelId) {
      throw new MambaScopeError('bad-input', 'panel', `model ${modelId} is not loaded in the panel (send loadModel first)`);
    }
    return loaded;
  }

  /** After a switch between tfjs backends: the weights go from the backend that holds them to `backend`. */
  private async move(loaded: NonNullable<ComputeSession['loaded']>, engine: Extract<Engine, { kind: 'tfjs' }>, backend: SelectedBackend, ctx: RequestContext): Promise<void> {
    ctx.progress({ stage: `moving the weights to ${backend.info.backend}`, done: 0, total: 1 });
    try {
      engine.model = await moveTfModel(engine.model);
    } catch (e) {
      if (this.loaded === loaded) this.loaded = null;
      this.onModelLost(loaded.context.id);
      const why = e instanceof Error ? e.message : String(e);
      throw new MambaScopeError('unsupported', 'panel', `could not move the weights of ${loaded.context.name} to ${backend.info.backend} (${why}): inspect again to load the model anew`);
    }
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

/** The engine's forward from each layer's carry, for a long run's chunks and windows. */
function chunkForward(engine: Engine): ChunkForward {
  return engine.kind === 'tfjs' ? tfjsChunkForward(engine.model) : webgpuChunkForward(engine.model);
}

/**
 * A streamed model whose layer reads also record each layer's scan view (A_log and D, all the
 * analyses keep of a layer) and report which layer arrived.
 */
function observeLayers(model: StreamedModel<'float32'>, scans: (ScanView<'float32'> | undefined)[], onRead: (layer: number) => void): StreamedModel<'float32'> {
  // The reader is an arrow over `read` alone, not a method of the object returned: the tfjs engine
  // keeps it for every forward, and neither `model` nor that object may stay reachable through it
  // (both hold the backbone's float32 copy, 0.5 GB at 2.8b, which the backend already has).
  const read = model.layer;
  const layer = async (i: number) => {
    onRead(i);
    const l = await read(i);
    scans[i] = l.scanView();
    return l;
  };
  return { ...model, layer };
}
