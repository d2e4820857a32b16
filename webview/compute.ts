/**
 * Compute in the webview: the selected tfjs backend, the model the host sent (weights arrive
 * once per model and are uploaded once per backend), and forward runs on it. The float32 weights
 * stay in memory too: the analyses read A_log from them, and a backend switch re-uploads them
 * without asking the host to send them again.
 */
import { MambaScopeError } from '../src/engine/errors';
import { MemoryTensorStore } from '../src/engine/formats/memoryStore';
import type { ForwardResult, InternalName } from '../src/engine/internals';
import { loadModel } from '../src/engine/model/load';
import type { Tensor } from '../src/engine/tensor';
import { createTfModel, tfjsForward, type TfModel } from '../src/engine/tfjs/forward';
import { fromTensorMessage, type BackendInfo, type BackendPreference, type LoadModelParams, type RequestContext, type RunParams } from '../src/protocol';
import { selectBackend } from './backend';
import { NEXT_TOKEN_K, type ModelContext } from './inspection';

/** The internals the views use (the state view rescans from delta, u and B). */
const PANEL_INTERNALS: readonly InternalName[] = ['z', 'u', 'delta', 'B', 'C', 'y', 'h'];

export class ComputeSession {
  private backend: { preference: BackendPreference; info: Promise<BackendInfo> } | null = null;
  private loaded: { context: ModelContext; tf: TfModel | null; backend: BackendInfo | null } | null = null;
  /** Runs and uploads one at a time: they share the backend's memory. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private wasmPath: string | undefined) {}

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
    this.loaded?.tf?.dispose();
    this.loaded = { context: { id: params.modelId, name: params.name, model, vocab: params.vocab ?? null }, tf: null, backend: null };
    ctx.progress({ stage: 'uploading weights', done: 1, total: 2 });
    const start = performance.now();
    await this.upload(backend);
    return { backend, uploadMs: performance.now() - start };
  }

  async run(params: RunParams, ctx: RequestContext): Promise<{ result: ForwardResult<Float32Array>; backend: BackendInfo; forwardMs: number }> {
    const loaded = this.loaded;
    if (!loaded || loaded.context.id !== params.modelId) {
      throw new MambaScopeError('bad-input', 'panel', `model ${params.modelId} is not loaded in the panel (send loadModel first)`);
    }
    const backend = await this.ensureBackend(params.settings.backend);
    if (loaded.backend !== backend) await this.upload(backend);
    ctx.progress({ stage: 'forward pass', done: 0, total: 1 });
    return this.serial(async () => {
      const start = performance.now();
      const result = await tfjsForward(loaded.tf!, new Int32Array(params.ids), {
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

  /** Puts the weights on `backend` (again, after a backend switch). */
  private upload(backend: BackendInfo): Promise<void> {
    const loaded = this.loaded!;
    return this.serial(async () => {
      loaded.tf?.dispose();
      loaded.tf = createTfModel(loaded.context.model);
      loaded.backend = backend;
    });
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
