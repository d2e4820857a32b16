/**
 * What the panel shows, whatever it came from: a run of the loaded model on a sample, or a
 * tensor dump opened from disk. Both become an Inspection (tokens, per-layer internals under the
 * dump format's names, logits) so every view works on either. The loaded model contributes the
 * one thing a dump lacks: A = −exp(A_log) per layer, needed for the forget factor and states.
 */
import { dumpLayers, dumpTokens, parseDumpKey } from '../src/engine/formats/dump';
import { MemoryTensorStore } from '../src/engine/formats/memoryStore';
import { INTERNAL_NAMES, type ForwardResult, type InternalName } from '../src/engine/internals';
import type { ScanView } from '../src/engine/layers/kind';
import { isLanguageModelConfig, type ModelConfig } from '../src/engine/model/config';
import { predictionsFromLogits, type Predictions } from '../src/engine/predictions';
import type { Tensor } from '../src/engine/tensor';
import { fromTensorMessage, type DumpParams, type RunParams, type TensorMessage } from '../src/protocol';
import type { DecayParams } from './analysis/layerInputs';
import type { LongRun } from './long/longRun';
import type { TokenWindow } from './long/window';

export interface LayerRecord {
  readonly layer: number;
  readonly tensors: Partial<Record<InternalName, Tensor<Float32Array>>>;
  readonly hTokens?: Int32Array;
  /** The state [D, N] before the record's first token: a long run's window starts from its checkpoint's carry, not from 0. */
  readonly h0?: Float32Array;
}

export interface Inspection {
  readonly kind: 'run' | 'dump';
  /** runId, or the dump's name. */
  readonly id: string;
  readonly title: string;
  /** Tokens on the token axis (0 when a dump has no token axis). */
  readonly length: number;
  /** Position in the whole sample of token 0 here: a long run's window starts there; 0 otherwise. */
  readonly offset: number;
  readonly ids: Int32Array | null;
  /** Readable text of each token, when known. */
  readonly tokens: readonly string[] | null;
  readonly layers: readonly LayerRecord[];
  /** Next-token predictions at every position: from the device for runs, from the logits for dumps. */
  readonly predictions: Predictions | null;
  /** Shape of every tensor by name (a dump's keys; for runs layers.i.<name> and logits), for the tensor browser. */
  readonly index: ReadonlyMap<string, readonly number[]>;
  /** A tensor by name: already here, or fetched from the host (dumps too large to send whole). */
  readonly tensor: (name: string) => Promise<Tensor<Float32Array | Int32Array>>;
}

type AnyTensor = Tensor<Float32Array | Int32Array>;

function tensorSource(loaded: Map<string, AnyTensor>, fetch?: (name: string) => Promise<AnyTensor>): (name: string) => Promise<AnyTensor> {
  const pending = new Map<string, Promise<AnyTensor>>();
  return (name) => {
    const t = loaded.get(name);
    if (t) return Promise.resolve(t);
    if (!fetch) return Promise.reject(new Error(`no tensor named "${name}"`));
    let p = pending.get(name);
    if (!p) {
      p = fetch(name).then((x) => (loaded.set(name, x), x));
      pending.set(name, p);
      p.catch(() => pending.delete(name));
    }
    return p;
  };
}

/** The loaded model as the views see it: its weights are in the tfjs backend, not here. */
export interface ModelContext {
  readonly id: string;
  readonly name: string;
  readonly config: ModelConfig;
  /** Each layer's scan as its kind describes it: A_log, the one weight the analyses need, and the widths it implies. */
  readonly scans: readonly (ScanView<'float32'> | undefined)[];
  /** What each layer is, for people ("Mamba-2 + MLP", "attention + MoE"). */
  readonly layerLabels?: readonly string[];
  readonly vocab: readonly string[] | null;
}

export function fromRun(params: RunParams, result: ForwardResult<Float32Array>): Inspection {
  const ids = new Int32Array(params.ids);
  const predictions = result.predictions ?? (result.logits ? predictionsFromLogits(result.logits, ids, NEXT_TOKEN_K) : null);
  return runInspection({ id: params.runId, title: params.sampleName, offset: 0, ids, tokens: params.tokens, predictions }, result);
}

/**
 * Window `w` of a long run: its tokens, the run's predictions there, and (once recomputed from
 * the nearest checkpoint) every layer's internals over the window with the state entering it;
 * null while they are recomputed (the overview draws meanwhile). Its id names the window, so the
 * views' caches see another inspection when the window moves.
 */
export function windowInspection(run: LongRun, w: TokenWindow, internals: WindowInternals | null): Inspection {
  const [a, b] = w;
  const ids = new Int32Array(run.params.ids, a * Int32Array.BYTES_PER_ELEMENT, b - a);
  const predictions = run.predictions && predictionRows(run.predictions, a, b);
  const inspection = { id: `${run.params.runId}@${a}-${b}`, title: run.params.sampleName, offset: a, ids, tokens: run.params.tokens.slice(a, b), predictions };
  return runInspection(inspection, internals?.result ?? { layers: [] }, internals?.h0);
}

/** Rows [a, b) of predictions (views: no copy). */
export function predictionRows(p: Predictions, a: number, b: number): Predictions {
  return {
    k: p.k, ids: p.ids.subarray(a * p.k, b * p.k), probs: p.probs.subarray(a * p.k, b * p.k), nextProb: p.nextProb.subarray(a, b), nextRank: p.nextRank.subarray(a, b),
    ...(p.nextLogProb ? { nextLogProb: p.nextLogProb.subarray(a, b) } : {}),
  };
}

/** The internals of a long run's window, recomputed from the checkpoint before it: each layer's rows over the window and its state entering the window. */
export interface WindowInternals {
  readonly result: ForwardResult<Float32Array>;
  /** Layer → the state [D, N] after the token before the window. */
  readonly h0: ReadonlyMap<number, Float32Array>;
}

function runInspection(base: Pick<Inspection, 'id' | 'title' | 'offset' | 'ids' | 'tokens' | 'predictions'>, result: ForwardResult<Float32Array>, h0?: ReadonlyMap<number, Float32Array>): Inspection {
  const ids = base.ids!;
  const tensors = new Map<string, AnyTensor>([['input_ids', { shape: [ids.length], data: ids }]]);
  if (result.logits) tensors.set('logits', result.logits);
  for (const l of result.layers) {
    for (const [name, t] of Object.entries(l.tensors)) if (t) tensors.set(`layers.${l.layer}.${name}`, t);
  }
  return {
    ...base,
    kind: 'run',
    length: ids.length,
    layers: result.layers.map((l) => ({ layer: l.layer, tensors: l.tensors, hTokens: l.hTokens, h0: h0?.get(l.layer) })),
    index: new Map([...tensors].map(([n, t]) => [n, t.shape])),
    tensor: tensorSource(tensors),
  };
}

/** How many next tokens the panel lists per position. */
export const NEXT_TOKEN_K = 10;

/** Dumps written by transformers hooks name the logits hf_logits. */
const LOGITS_KEYS = ['logits', 'hf_logits'];

/**
 * A dump as the host sent it: all tensors when they fit its budget, else none and `read` fetches
 * them one by one (then only the tensor browser and the token strip have data to show).
 */
export async function fromDump(params: DumpParams, read: (name: string) => Promise<TensorMessage>): Promise<Inspection> {
  const tensors = new Map<string, AnyTensor>();
  for (const [name, m] of Object.entries(params.tensors)) tensors.set(name, fromTensorMessage(m, `${params.name}: ${name}`));
  const tensor = tensorSource(tensors, async (name) => fromTensorMessage(await read(name), `${params.name}: ${name}`));
  const index = new Map(params.index.map((e) => [e.name, e.shape]));
  const idsShape = index.get('input_ids');
  const idsTensor = idsShape && idsShape.length === 1 ? await tensor('input_ids') : undefined;
  const ids = idsTensor ? Int32Array.from(idsTensor.data) : null;
  const store = new MemoryTensorStore(params.name, tensors, params.metadata);
  const tokens = dumpTokens(store);
  const length = ids?.length ?? tokens?.length ?? 0;
  const layers: LayerRecord[] = dumpLayers(store).map((layer) => {
    const rec: Partial<Record<InternalName, Tensor<Float32Array>>> = {};
    let hTokens: Int32Array | undefined;
    for (const [key, t] of tensors) {
      const k = parseDumpKey(key);
      if (k.layer !== layer) continue;
      if (k.name === 'h_tokens') hTokens = Int32Array.from(t.data);
      else if ((INTERNAL_NAMES as readonly string[]).includes(k.name) && t.data instanceof Float32Array) rec[k.name as InternalName] = t as Tensor<Float32Array>;
    }
    return { layer, tensors: rec, hTokens };
  });
  const logitsKey = LOGITS_KEYS.find((k) => tensors.get(k)?.data instanceof Float32Array && tensors.get(k)!.shape.length === 2);
  return {
    kind: 'dump',
    id: params.name,
    title: params.name,
    length,
    offset: 0,
    ids,
    tokens: tokens && tokens.length === length ? tokens : null,
    layers: layers.filter((l) => Object.keys(l.tensors).length > 0),
    predictions: logitsKey ? predictionsFromLogits(tensors.get(logitsKey) as Tensor<Float32Array>, ids ?? [], NEXT_TOKEN_K) : null,
    index,
    tensor,
  };
}

/**
 * A of one layer from the loaded model, when the model has that layer and its shapes match the
 * inspection's (a dump may come from another model): otherwise null and the reason.
 */
export function decayFor(model: ModelContext | null, rec: LayerRecord): { decay: DecayParams | null; why: string | null } {
  if (!model) return { decay: null, why: 'needs the model’s A = −exp(A_log): open the model that produced this data (Mamba Scope: Open Model…)' };
  if (!isLanguageModelConfig(model.config)) return { decay: null, why: `${model.name} is a single block, not a layered model` };
  const scan = model.scans[rec.layer];
  const delta = rec.tensors.delta, u = rec.tensors.u, B = rec.tensors.B;
  const fits = scan && delta && u && B && u.shape[1] === scan.channels && B.shape[1] === scan.stateWidth && delta.shape[1] === scan.deltaWidth;
  if (!fits) return { decay: null, why: `the loaded model ${model.name} does not match this layer’s shapes: open the model that produced this data` };
  return { decay: { A: { shape: scan.aLog.shape, data: scan.aLog.data.map((v) => -Math.exp(v)) }, groups: scan.groups }, why: null };
}
