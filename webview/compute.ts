/**
 * Compute in the webview: the selected tfjs backend, the model the host sent (weights arrive
 * once per model), and forward runs on it. Once uploaded, the weights live only in the backend:
 * the JS copy the host sent is let go (0.5 GB for mamba-130m), the analyses keep just each layer's
 * scan view (A_log and D), and
 * a backend switch moves the weights from the old backend to the new one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { LimitError, MambaScopeError } from '../src/engine/errors';
import { MemoryTensorStore } from '../src/engine/formats/memoryStore';
import { keptValues, type ForwardResult, type InternalName } from '../src/engine/internals';
import { loadModel } from '../src/engine/model/load';
import type { Tensor } from '../src/engine/tensor';
import { createTfModel, moveTfModel, tfjsForward, type TfModel } from '../src/engine/tfjs/forward';
import { fromTensorMessage, type BackendInfo, type BackendPreference, type LoadModelParams, type RequestContext, type RunParams } from '../src/protocol';
import { selectBackend } from './backend';
import { NEXT_TOKEN_K, type ModelContext } from './inspection';

/**
 * The internals the views use (the state view rescans from delta, u and B). y is not among them:
 * no view draws it, and at mamba-130m × 2048 tokens it would cost 302 MB; `mamba-scope inspect`
 * writes it to a dump.
 */
const PANEL_INTERNALS: readonly InternalName[] = ['z', 'u', 'delta', 'B', 'C', 'h'];

export class ComputeSession {
  private backend: { preference: BackendPreference; info: Promise<BackendInfo> } | null = null;
  private loaded: { context: ModelContext; tf: TfModel; backend: BackendInfo } | null = null;
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

  /** The backend for `preference`, selected once per preference. */
  ensureBackend(preference: BackendPreference): Promise<BackendInfo> {
    if (this.backend?.preference !== preference) {
      const info = this.serial(() => selectBackend(preference, this.wasmPath));
      this.backend = { preference, info };
      // A failed selection is retried next time rather than remembered.
      info.catch(() => {
        if (this.backend?.info === info) this.backend = null;
      });
    }
    return this.backend.info;
  }

  async loadModel(params: LoadModelParams, preference: BackendPreference, ctx: RequestContext): Promise<{ backend: BackendInfo; uploadMs: number }> {
    const backend = await this.ensureBackend(preference);
    ctx.throwIfCancelled();
    ctx.progress({ stage: 'reading weights', done: 0, total: 2 });
    const tensors = new Map<string, Tensor>();
    for (const [name, m] of Object.entries(params.tensors)) tensors.set(name, fromTensorMessage(m, `${params.name}: ${name}`));
    const model = await loadModel(params.config, new MemoryTensorStore(params.name, tensors), 'float32');
    ctx.throwIfCancelled();
    ctx.progress({ stage: 'uploading weights', done: 1, total: 2 });
    return this.serial(async () => {
      this.loaded?.tf.dispose();
      this.loaded = null;
      const start = performance.now();
      const tf = createTfModel(model);
      const context: ModelContext = { id: params.modelId, name: params.name, config: model.config, scans: model.layers.map((l) => l.scanView()), vocab: params.vocab ?? null };
      this.loaded = { context, tf, backend };
      return { backend, uploadMs: performance.now() - start };
    });
  }

  /** The tfjs backend's share of the panel's memory. */
  memory(): { backendBytes: number; wasmHeapBytes: number | null } {
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
    const layers = params.settings.layers?.length ?? loaded.tf.layers.length;
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
    const backend = await this.ensureBackend(params.settings.backend);
    return this.serial(async () => {
      if (loaded.backend.backend !== backend.backend) await this.move(loaded, backend, ctx);
      else loaded.backend = backend;
      ctx.progress({ stage: 'forward pass', done: 0, total: 1 });
      const start = performance.now();
      const result = await tfjsForward(loaded.tf, new Int32Array(params.ids), {
        layers: params.settings.layers,
        statesAt: params.settings.statesAt,
        checkCancelled: ctx.throwIfCancelled,
        // What the views draw; hidden_in/out and the [L, V] logits stay off the heap.
        keep: PANEL_INTERNALS,
        predictions: NEXT_TOKEN_K,
      });
      return { result, backend, forwardMs: performance.now() - start };
    });
  }

  private require(modelId: string): NonNullable<ComputeSession['loaded']> {
    const loaded = this.loaded;
    if (!loaded || loaded.context.id !== modelId) {
      throw new MambaScopeError('bad-input', 'panel', `model ${modelId} is not loaded in the panel (send loadModel first)`);
    }
    return loaded;
  }

  /** After a backend switch: the weights go from the backend that holds them to `backend`. */
  private async move(loaded: NonNullable<ComputeSession['loaded']>, backend: BackendInfo, ctx: RequestContext): Promise<void> {
    ctx.progress({ stage: `moving the weights to ${backend.backend}`, done: 0, total: 1 });
    try {
      loaded.tf = await moveTfModel(loaded.tf);
      loaded.backend = backend;
    } catch (e) {
      if (this.loaded === loaded) this.loaded = null;
      this.onModelLost(loaded.context.id);
      const why = e instanceof Error ? e.message : String(e);
      throw new MambaScopeError('unsupported', 'panel', `could not move the weights of ${loaded.context.name} to ${backend.backend} (${why}): inspect again to load the model anew`);
    }
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
