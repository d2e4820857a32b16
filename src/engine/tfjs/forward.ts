/**
 * The forward pass on TensorFlow.js, on whichever backend is active (cpu and wasm in Node;
 * webgl, wasm and cpu in the webview; WebGPU is the native engine, ../webgpu/). It walks the same layers as the float64 reference, which it is
 * tested against, calling each layer's kind (the tfjs.ts of its folder in layers/), and records
 * the same internals under the same names. Weights are uploaded once (createTfModel) and reused
 * for every run; only the requested layers' internals are downloaded. A model too large for the
 * backend's memory is streamed instead: its backbone stays on the backend and each layer is read,
 * uploaded, run and freed as the forward reaches it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { resolvePositions, wantsLayer, type ForwardOptions, type ForwardResult, type InternalName, type LayerInternals } from '../internals';
import type { LayerEdit } from '../interventions';
import type { LayerConfig, LayerKind, LayerStep, ModelLayer, ParamSpecs, TfRun, TfWeights } from '../layers/kind';
import { backboneScales, isLanguageModelConfig, type ModelConfig } from '../model/config';
import type { LoadedModel } from '../model/graph';
import type { StreamedModel } from '../model/load';
import type { Predictions } from '../predictions';
import type { Tensor } from '../tensor';
import { layoutFor, rmsNorm, scaled, TfUploader, type W, type WeightLayout } from './ops';
import { scanKernelsFor } from './scan';

/** One layer's weights on the backend, bound to its kind's tfjs forward. */
export interface TfModelLayer {
  readonly index: number;
  forward(x: W, run: TfRun, edit?: LayerEdit): LayerStep<W>;
  /** The same layer over its weights moved by `move`; `relayout` turns the projections to a new WeightLayout. */
  moved(move: (t: W, transpose: boolean) => Promise<W>, relayout: boolean): Promise<TfModelLayer>;
}

/** Where a streamed model's layers come from: read anew (from a file, or from the host) on each call. */
export type LayerSource = Pick<StreamedModel<'float32'>, 'layerCount' | 'layer'>;

export interface TfModel {
  readonly config: ModelConfig;
  readonly layout: WeightLayout;
  readonly embedding?: W;
  /** Resident: every layer's weights on the backend. Streamed: none; each is uploaded when the forward reaches it, and freed after. */
  readonly layers: readonly TfModelLayer[] | LayerSource;
  readonly normF?: W;
  readonly lmHead?: W;
  dispose(): void;
}

export function createTfModel(model: LoadedModel<'float32'> | StreamedModel<'float32'>, layout: WeightLayout = layoutFor(tf.getBackend())): TfModel {
  const up = new TfUploader(layout);
  const layers = 'layers' in model ? model.layers.map((layer) => uploadLayer(layer, up)) : { layerCount: model.layerCount, layer: model.layer };
  const dispose = () => up.dispose();
  // The simplified block has no backbone.
  if (!model.embedding || !model.normF || !model.lmHead) return { config: model.config, layout, layers, dispose };
  // lm_head stays [V, H] in every layout (the embedding gather needs it so); tied, it is the embedding tensor.
  const embedding = up.tensor(model.embedding);
  return { config: model.config, layout, embedding, layers, normF: up.tensor(model.normF), lmHead: model.lmHead === model.embedding ? embedding : up.tensor(model.lmHead), dispose };
}

function uploadLayer(layer: ModelLayer<'float32'>, up: TfUploader): TfModelLayer {
  return layer.open((kind, config, params) => bindLayer(kind, config, layer.index, kind.tfjs.upload(config, params, up)));
}

/** The model's layers on the backend, in order: a streamed layer is uploaded when its turn comes and freed when the caller moves on (or stops). */
async function* backendLayers(model: TfModel): AsyncGenerator<TfModelLayer> {
  const { layers } = model;
  if (!('layerCount' in layers)) return yield* layers;
  for (let i = 0; i < layers.layerCount; i++) {
    const up = new TfUploader(model.layout);
    try {
      yield uploadLayer(await layers.layer(i), up);
    } finally {
      up.dispose();
    }
  }
}

function bindLayer<C extends LayerConfig, S extends ParamSpecs<C>, T extends TfWeights>(kind: LayerKind<C, S, T>, config: C, index: number, weights: T): TfModelLayer {
  return {
    index,
    forward: (x, run, edit) => kind.tfjs.forward(config, weights, x, run, edit),
    async moved(move, relayout) {
      const next: Record<string, W | undefined> = {};
      const p = kind.tfjs.projections;
      const isProjection = (name: string, t: W) => (typeof p === 'function' ? p(name, t) : (p as readonly string[]).includes(name));
      for (const [name, t] of Object.entries(weights)) next[name] = t && (await move(t, relayout && isProjection(name, t)));
      // One entry per entry of `weights`, each the moved tensor: the same shape of record.
      return bindLayer(kind, config, index, next as T);
    },
  };
}

/**
 * The same weights on the current backend, read back from the backend that holds them, and the
 * old copies freed. A backend switch so needs no float32 copy of the checkpoint in JS memory:
 * at most one tensor is in transit at a time. Tied weights stay one tensor.
 */
export async function moveTfModel(model: TfModel): Promise<TfModel> {
  const layout = layoutFor(tf.getBackend());
  const moved = new Map<W, W>();
  /** `t` on the current backend; `transpose` turns a projection into the new backend's layout. */
  const move = async (t: W, transpose = false): Promise<W> => {
    let m = moved.get(t);
    if (!m) {
      m = tf.tensor(await t.data(), t.shape, t.dtype);
      if (transpose) {
        const turned = tf.transpose(m);
        m.dispose();
        m = turned;
      }
      moved.set(t, m);
      t.dispose();
    }
    return m;
  };
  const moveOptional = async (t: W | undefined) => t && (await move(t));
  const relayout = layout !== model.layout;
  const dispose = () => moved.forEach((t) => t.dispose());
  try {
    // A streamed model's layers are not on any backend: the next forward uploads them in the new layout.
    const layers = 'layerCount' in model.layers ? model.layers : await movedLayers(model.layers, move, relayout);
    const [embedding, normF, lmHead] = [await moveOptional(model.embedding), await moveOptional(model.normF), await moveOptional(model.lmHead)];
    return { config: model.config, layout, embedding, normF, lmHead, layers, dispose };
  } catch (e) {
    // Half moved is no model: the caller must load the weights again.
    dispose();
    model.dispose();
    throw e;
  }
}

/** Resident layers moved one after another (each move may read a tensor back from the old backend). */
async function movedLayers(layers: readonly TfModelLayer[], move: (t: W, transpose: boolean) => Promise<W>, relayout: boolean): Promise<TfModelLayer[]> {
  const out: TfModelLayer[] = [];
  for (const layer of layers) out.push(await layer.moved(move, relayout));
  return out;
}

/** Logits of some rows (times a hybrid family's logits multiplier): lm_head stays [V, H] in every layout (the embedding gather needs it so). */
function headLogits(rows: W, lmHead: W, layout: WeightLayout, scale = 1): W {
  return tf.tidy(() => {
    const logits = layout === 'in-out'
      ? tf.matMul(rows as tf.Tensor2D, lmHead as tf.Tensor2D, false, true)
      : tf.transpose(tf.matMul(lmHead as tf.Tensor2D, tf.transpose(rows) as tf.Tensor2D));
    return scaled(logits, scale);
  });
}

// --- forward --------------------------------------------------------------------------------------

export async function tfjsForward(model: TfModel, ids: ArrayLike<number>, options: ForwardOptions = {}): Promise<ForwardResult<Float32Array>> {
  const { embedding, normF, lmHead } = model;
  const c = model.config;
  if (!embedding || !normF || !lmHead || !isLanguageModelConfig(c)) throw new Error('the simplified block takes a hidden-state input, not token ids: use tfjsLayers');
  const vocab = c.vocabSize;
  for (let i = 0; i < ids.length; i++) {
    if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= vocab) throw new RangeError(`token id ${ids[i]} at position ${i} is outside the ${vocab}-token vocabulary`);
  }
  const idTensor = tf.tensor1d(Int32Array.from(ids), 'int32');
  const gathered = tf.gather(embedding, idTensor);
  idTensor.dispose();
  // A hybrid family's embedding multiplier (Granite's, Falcon-H1's) scales the stream entering layer 0.
  const scales = backboneScales(c);
  const input = scaled(gathered, scales.embedding);
  if (input !== gathered) gathered.dispose();
  // The logit lens reads each kept layer's stream through the same head as the predictions.
  const lens = options.logitLens ? (stream: W) => headPredictions(stream, normF, lmHead, c.eps, model.layout, ids, options.logitLens!, scales.logits) : undefined;
  const { hidden, layers } = await walk(model, input, options, lens);
  try {
    const normed = tf.tidy(() => rmsNorm(hidden, normF, c.eps));
    try {
      if (options.predictions) return { predictions: await devicePredictions(normed, lmHead, model.layout, ids, options.predictions, undefined, scales.logits), layers };
      const logits = headLogits(normed, lmHead, model.layout, scales.logits);
      const data = (await logits.data()) as Float32Array;
      logits.dispose();
      return { logits: { shape: [ids.length, vocab], data }, layers };
    } finally {
      normed.dispose();
    }
  } finally {
    hidden.dispose();
  }
}

/** The stream's predictions through the final norm and the lm_head: the logit lens of one layer. */
async function headPredictions(stream: W, normF: W, lmHead: W, eps: number, layout: WeightLayout, ids: ArrayLike<number>, k: number, logitsScale: number): Promise<Predictions> {
  const normed = tf.tidy(() => rmsNorm(stream, normF, eps));
  try {
    return await devicePredictions(normed, lmHead, layout, ids, k, undefined, logitsScale);
  } finally {
    normed.dispose();
  }
}

/** The layers alone, on a hidden-state input [L, d_model] (the simplified block's run-block). */
export async function tfjsLayers(model: TfModel, x: Tensor<Float32Array>, options: ForwardOptions = {}): Promise<ForwardResult<Float32Array>> {
  if (options.logitLens) throw new Error('the logit lens reads the lm_head, which the simplified block has not');
  const { hidden, layers } = await walk(model, tf.tensor(x.data, [...x.shape]), options);
  hidden.dispose();
  return { layers };
}

/**
 * Runs every layer on `input` (which it frees), each with its edits (options.edits); returns the
 * stream leaving the last layer, still on the device. `lens` turns a kept layer's output stream into its logit lens.
 */
async function walk(model: TfModel, input: W, options: ForwardOptions, lens?: (stream: W) => Promise<Predictions>): Promise<{ hidden: W; layers: LayerInternals<Float32Array>[] }> {
  const run: TfRun = { layout: model.layout, kernels: scanKernelsFor(tf.getBackend()), at: resolvePositions(options.statesAt ?? [], input.shape[0]), embeddings: input, attentionPattern: options.attentionPattern };
  let hidden = input;
  const layers: LayerInternals<Float32Array>[] = [];
  try {
    for await (const layer of backendLayers(model)) {
      options.checkCancelled?.();
      const keepAll = wantsLayer(options, layer.index);
      const edit = options.edits?.get(layer.index);
      const step = tf.tidy(() => {
        const s = layer.forward(steered(hidden, edit), run, edit);
        return keepAll ? s : { next: s.next, internals: {} };
      });
      // The embeddings stay until the end: later layers may read them (run.embeddings).
      if (keepAll) {
        const tensors = await download(step.internals, [step.next, input], options.keep);
        layers.push({ layer: layer.index, tensors, hTokens: step.internals.h ? run.at : undefined, ...(lens ? { lens: await lens(step.next) } : {}) });
      }
      // The layer's input (download has freed it already when the layer records it as hidden_in).
      if (hidden !== input) hidden.dispose();
      hidden = step.next;
      await tf.nextFrame(); // lets the webview paint between layers
    }
  } catch (e) {
    hidden.dispose();
    throw e;
  } finally {
    if (hidden !== input) input.dispose();
  }
  return { hidden, layers };
}

/**
 * The stream entering a layer with the edit's steering vectors added at their tokens (steer in
 * docs/INTERVENTIONS.md): the stream itself without any, so an unsteered run adds nothing.
 */
function steered(hidden: W, edit?: LayerEdit): W {
  if (!edit?.steer) return hidden;
  const [L, H] = hidden.shape;
  const offsets = new Float32Array(L * H);
  for (const s of edit.steer) for (const t of s.tokens) for (let j = 0; j < H; j++) offsets[t * H + j] += s.scale * s.vector[j];
  return tf.tidy(() => tf.add(hidden, tf.tensor2d(offsets, [L, H])));
}

/** Downloads the internals `keep` asks for and frees every one of them but those `alive` still needs (the next layer's input, the embeddings). */
async function download(captured: Partial<Record<InternalName, W>>, alive: readonly W[], keep?: readonly InternalName[]): Promise<Partial<Record<InternalName, Tensor<Float32Array>>>> {
  const out: Partial<Record<InternalName, Tensor<Float32Array>>> = {};
  // One tensor may be recorded under two names (a hybrid branch's only path is also its `out`).
  const entries = Object.entries(captured) as [InternalName, W][];
  for (const [name, t] of entries) if (!keep || keep.includes(name)) out[name] = { shape: t.shape, data: (await t.data()) as Float32Array };
  for (const t of new Set(entries.map(([, t]) => t))) if (!alive.includes(t)) t.dispose();
  return out;
}

/**
 * Size of one [rows, V] block of logits in the predictions: bounds their temporaries (about three
 * blocks' worth), which on the wasm and cpu backends sit in the webview's own memory.
 */
const PREDICTION_BLOCK_BYTES = 8e6;

/**
 * Top-k and the following token's probability and rank per position, on the device, one block of
 * rows at a time; the small per-block results stay there and come down in four reads at the end.
 */
export async function devicePredictions(normed: W, lmHead: W, layout: WeightLayout, ids: ArrayLike<number>, k: number, blockBytes = PREDICTION_BLOCK_BYTES, logitsScale = 1): Promise<Predictions> {
  const L = ids.length;
  const V = lmHead.shape[0];
  const blockRows = Math.max(1, Math.floor(blockBytes / (4 * V)));
  type Block = { ids: W; probs: W; nextProb: W; nextRank: W };
  const blocks: Block[] = [];
  let joined: Block | undefined;
  try {
    for (let start = 0; start < L; start += blockRows) {
      const rows = Math.min(blockRows, L - start);
      // (row, token that follows it): the last position has none, id 0 stands in and is not reported.
      const pairs = new Int32Array(2 * rows);
      for (let r = 0; r < rows; r++) {
        pairs[2 * r] = r;
        pairs[2 * r + 1] = start + r + 1 < L ? ids[start + r + 1] : 0;
      }
      blocks.push(tf.tidy(() => {
        const logits = headLogits(tf.slice(normed, start, rows), lmHead, layout, logitsScale);
        const probs = tf.softmax(logits);
        const top = tf.topk(probs, k);
        const at = tf.tensor2d(pairs, [rows, 2], 'int32');
        const nextLogit = tf.gatherND(logits, at);
        return {
          ids: top.indices,
          probs: top.values,
          nextProb: tf.gatherND(probs, at),
          nextRank: tf.sum(tf.cast(tf.greater(logits, tf.expandDims(nextLogit, 1)), 'int32'), 1),
        };
      }));
    }
    joined = tf.tidy(() => ({
      ids: tf.concat(blocks.map((b) => b.ids)),
      probs: tf.concat(blocks.map((b) => b.probs)),
      nextProb: tf.concat(blocks.map((b) => b.nextProb)),
      nextRank: tf.concat(blocks.map((b) => b.nextRank)),
    }));
    const [topIds, topProbs, nextProb, nextRank] = await Promise.all([joined.ids.data(), joined.probs.data(), joined.nextProb.data(), joined.nextRank.data()]);
    const out: Predictions = { k, ids: topIds as Int32Array, probs: topProbs as Float32Array, nextProb: nextProb as Float32Array, nextRank: nextRank as Int32Array };
    out.nextProb[L - 1] = NaN;
    out.nextRank[L - 1] = -1;
    return out;
  } finally {
    for (const b of [...blocks, ...(joined ? [joined] : [])]) Object.values(b).forEach((t) => t.dispose());
  }
}
