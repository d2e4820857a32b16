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
import { MemoryTensorStore } from '../src/engine/formats/memoryStore';
import { keptValues, type ForwardResult, type InternalName } from '../src/engine/internals';
import type { LoadedModel } from '../src/engine/model/graph';
import { loadModel } from '../src/engine/model/load';
import type { Tensor } from '../src/engine/tensor';
import { createTfModel, moveTfModel, tfjsForward, type TfModel } from '../src/engine/tfjs/forward';
import { WebGpuModel } from '../src/engine/webgpu/model';
import { fromTensorMessage, type BackendInfo, type BackendPreference, type LoadModelParams, type RequestContext, type RunParams } from '../src/protocol';
import { isSoftwareAdapter, selectBackend, type SelectedBackend } from './backend';
import { NEXT_TOKEN_K, type ModelContext } from './inspection';

/**
 * The internals the views use (the state view rescans from delta, u and B). y is not among them:
 * no view draws it, and at mamba-130m × 2048 tokens it would cost 302 MB; `mamba-scope inspect`
 * writes it to a dump.
 */
const PANEL_INTERNALS: readonly InternalName[] = ['z', 'u', 'delta', 'B', 'C', 'h'];

/** Where the weights are: a tfjs model, or the native engine's buffers on a GPUDevice. */
type Engine = { readonly kind: 'tfjs'; model: TfModel } | { readonly kind: 'webgpu-native'; readonly model: WebGpuModel; readonly device: GPUDevice };

export class ComputeSession {
  private backend: { preference: BackendPreference; selected: Promise<SelectedBackend> } | null = null;
  private loaded: { context: ModelContext; engine: Engine; backend: SelectedBackend } | null = null;
  /** Runs and uploads one at a time: they share the backend's memory. */
  private queue: Promise<unknown> = Promise.resolve();

  /** `onModelLost`: the weights are gone (a backend switch could not move them); the host must send them again. */
  constructor(private wasmPath: string | undefined, private readonly onModelLost: (modelId: string) => void) {}

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

  async loadModel(params: LoadModelParams, preference: BackendPreference, ctx: RequestContext): Promise<{ backend: BackendInfo; uploadMs: number }> {
    const backend = await this.select(preference);
    ctx.throwIfCancelled();
    ctx.progress({ stage: 'reading weights', done: 0, total: 2 });
    const tensors = new Map<string, Tensor>();
    for (const [name, m] of Object.entries(params.tensors)) tensors.set(name, fromTensorMessage(m, `${params.name}: ${name}`));
    const model = await loadModel(params.config, new MemoryTensorStore(params.name, tensors), 'float32');
    ctx.throwIfCancelled();
    ctx.progress({ stage: 'uploading weights', done: 1, total: 2 });
    return this.serial(async () => {
      this.release();
      const start = performance.now();
      const engine = this.upload(model, backend);
      const context: ModelContext = { id: params.modelId, name: params.name, config: model.config, scans: model.layers.map((l) => l.scanView()), vocab: params.vocab ?? null };
      this.loaded = { context, engine, backend };
      return { backend: backend.info, uploadMs: performance.now() - start };
    });
  }

  private upload(model: LoadedModel<'float32'>, backend: SelectedBackend): Engine {
    const { device, info } = backend;
    if (!device) return { kind: 'tfjs', model: createTfModel(model) };
    const native: Engine = { kind: 'webgpu-native', model: WebGpuModel.upload(device, model, { software: !!info.adapter && isSoftwareAdapter(info.adapter) }), device };
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
   * Bytes a run will keep for the views, checked against its memory limit before any work: a
   * LimitError names the setting that raises it.
   */
  plan(params: RunParams): number {
    const loaded = this.require(params.modelId);
    const tokens = params.ids.byteLength / Int32Array.BYTES_PER_ELEMENT;
    const layers = params.settings.layers?.length ?? loaded.context.scans.length;
    const states = new Set(params.settings.statesAt ?? []).size;
    const bytes = keptValues(loaded.context.config, { tokens, layers, keep: PANEL_INTERNALS, states }) * Float32Array.BYTES_PER_ELEMENT;
    const limit = params.settings.memoryLimitMB;
    if (bytes > limit * 1e6) {
      throw new LimitError(params.sampleName, `${tokens} tokens through ${layers} layers keep ${Math.ceil(bytes / 1e6)} MB for the panel's views, over its limit of ${limit} MB: raise the setting mambaScope.runMemoryLimitMB, or inspect a shorter selection (mambaScope.maxTokens cuts long samples)`);
    }
    return bytes;
  }

  async run(params: RunParams, ctx: RequestContext): Promise<{ result: ForwardResult<Float32Array>; backend: BackendInfo; forwardMs: number }> {
    this.plan(params);
    const loaded = this.require(params.modelId);
    const backend = await this.select(params.settings.backend);
    return this.serial(async () => {
      const engine = await this.engineFor(loaded, backend, ctx);
      ctx.progress({ stage: 'forward pass', done: 0, total: 1 });
      const start = performance.now();
      const options = {
        layers: params.settings.layers,
        statesAt: params.settings.statesAt,
        checkCancelled: ctx.throwIfCancelled,
        // What the views draw; hidden_in/out and the [L, V] logits stay off the heap.
        keep: PANEL_INTERNALS,
        predictions: NEXT_TOKEN_K,
      };
      const ids = new Int32Array(params.ids);
      const result = engine.kind === 'tfjs' ? await tfjsForward(engine.model, ids, options) : await engine.model.forward(ids, options);
      return { result, backend: backend.info, forwardMs: performance.now() - start };
    });
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
