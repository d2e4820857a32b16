/**
 * The float64 reference forward: the numerics oracle every other path is tested against. It
 * walks the model's layers, calling each layer's kind (the reference.ts of its folder in layers/, a direct
 * transcription of transformers' module code); the backbone's embedding, final norm and lm_head
 * are here.
 */
import { keptOnly, resolvePositions, wantsLayer, type ForwardOptions, type ForwardResult, type InternalName, type LayerInternals } from '../internals';
import { chunkRows, forwardInChunks, type ChunkedRun, type ChunkedRunOptions, type ChunkInput, type ChunkRunner } from '../chunkedForward';
import type { ModelLayer, ReferenceRun } from '../layers/kind';
import { isLanguageModel, type LanguageModel, type LoadedModel } from '../model/graph';
import type { LayerEdit } from '../interventions';
import { predictionsFromLogits, type Predictions } from '../predictions';
import type { StreamedModel } from '../model/load';
import { backboneScales, type LanguageModelConfig } from '../model/config';
import { embed, linear, rmsNorm, scaled, type F64 } from './ops';

/** The embedding output: the table's rows, times a hybrid family's embedding multiplier (Granite's, Falcon-H1's). */
export function embedTokens(config: LanguageModelConfig, ids: ArrayLike<number>, table: F64): F64 {
  return scaled(embed(ids, table), backboneScales(config).embedding);
}

/** Logits from the stream leaving the last layer: the final RMSNorm, lm_head, and a hybrid family's logits multiplier (Granite divides by logits_scaling). */
export function headLogits(config: LanguageModelConfig, hidden: F64, normF: F64, lmHead: F64): F64 {
  return scaled(linear(rmsNorm(hidden, normF, config.eps), lmHead), backboneScales(config).logits);
}

/** A kept layer's output stream as next-token predictions: the logit lens (ForwardOptions.logitLens). */
type Lens = (stream: F64) => Predictions;

/** The logit lens of a language model on `ids`, when the options ask for it: the head the logits go through, reduced to the top k. */
function lensOf(model: LanguageModel<'float64'> | StreamedModel<'float64'>, ids: ArrayLike<number>, options: ForwardOptions): Lens | undefined {
  const k = options.logitLens;
  return k ? (stream) => predictionsFromLogits(headLogits(model.config, stream, model.normF, model.lmHead), ids, k) : undefined;
}

/**
 * The forward, with options.edits' interventions (../interventions.ts: layerEdits) applied layer
 * by layer: steering on the stream entering a layer, the rest on its Δ, in its conv and scan, and
 * on a hybrid's paths. With options.logitLens, each kept layer's `lens`.
 */
export function referenceForward(model: LoadedModel<'float64'>, ids: ArrayLike<number>, options: ForwardOptions = {}): ForwardResult<Float64Array> {
  if (!isLanguageModel(model)) throw new Error('the simplified block takes a hidden-state input, not token ids: use referenceLayers');
  const { hidden, layers } = walk(model, embedTokens(model.config, ids, model.embedding), options, lensOf(model, ids, options));
  return { logits: headLogits(model.config, hidden, model.normF, model.lmHead), layers };
}

/** The layers alone, on a hidden-state input [L, d_model] (the simplified block's run-block). */
export function referenceLayers(model: LoadedModel<'float64'>, x: F64, options: ForwardOptions = {}): ForwardResult<Float64Array> {
  if (options.logitLens) throw new Error('the logit lens reads the lm_head, which the simplified block has not');
  return { layers: walk(model, x, options).layers };
}

/**
 * The same forward over a StreamedModel: each layer is read from the checkpoint when the stream
 * reaches it and let go after, so the weights held are the backbone's and one layer's.
 */
export async function referenceForwardStreamed(model: StreamedModel<'float64'>, ids: ArrayLike<number>, options: ForwardOptions = {}): Promise<ForwardResult<Float64Array>> {
  const embeddings = embedTokens(model.config, ids, model.embedding);
  const at = resolvePositions(options.statesAt ?? [], embeddings.shape[0]);
  const layers: LayerInternals<Float64Array>[] = [];
  const lens = lensOf(model, ids, options);
  let hidden = embeddings;
  for (let i = 0; i < model.layerCount; i++) {
    options.checkCancelled?.();
    hidden = runLayer(await model.layer(i), hidden, at, options, layers, { embeddings, attentionPattern: options.attentionPattern }, options.edits?.get(i), lens);
  }
  return { logits: headLogits(model.config, hidden, model.normF, model.lmHead), layers };
}

/**
 * The reference forward over a long sequence in chunks (../chunkedForward.ts walks them): each
 * layer's scan state and conv context are carried from one chunk to the next (LayerCarry), so the
 * run is the single pass's, bit for bit, while what it holds is O(chunk) and the result O(L): the
 * loss at every position, the logits where asked, and the final states.
 */
export function referenceForwardChunked(model: LanguageModel<'float64'>, ids: ArrayLike<number>, options: ReferenceChunkedOptions = {}): Promise<ChunkedRun<Float64Array>> {
  return forwardInChunks(referenceChunkRunner(model, options), ids, model.config.vocabSize, Float64Array, options);
}

export interface ReferenceChunkedOptions extends ChunkedRunOptions {
  /**
   * Each layer's internals on each chunk's rows (the single pass's rows chunk.start.. of them),
   * chunk after chunk, layer after layer: what a streaming analysis reads (`forgotten` reads Δ)
   * while the run holds one chunk. The tensors are the step's own; copy what outlives the call.
   */
  readonly onLayer?: (layer: number, internals: Partial<Record<InternalName, F64>>, chunk: ChunkInput) => void;
  /**
   * No final norm and lm_head: for a run read through onLayer alone, which then costs the
   * layers only. Its nll and logits are left 0.
   */
  readonly withoutHead?: boolean;
  /**
   * Layers whose onLayer internals hold the state after every token of the chunk (h [T, …]): a
   * streamed statistic of the state against position (forgotten's ‖h_t‖ per bucket) at T·D·N
   * values for one layer at a time, so the caller picks the chunk length to fit them.
   */
  readonly everyStateOf?: ReadonlySet<number>;
}

/** One chunk on the reference: each layer's kind steps from its carry; `checkCancelled` is polled between layers. */
function referenceChunkRunner(model: LanguageModel<'float64'>, options: ReferenceChunkedOptions): ChunkRunner<Float64Array> {
  const { checkCancelled, onLayer, withoutHead, everyStateOf } = options;
  const none = new Int32Array(0);
  return (chunk) => {
    const embeddings = embedTokens(model.config, chunk.ids, model.embedding);
    const every = Int32Array.from(chunk.ids, (_, t) => t);
    let hidden = embeddings;
    const carries = model.layers.map((layer, i) => {
      checkCancelled?.();
      const at = everyStateOf?.has(layer.index) ? every : none;
      const step = layer.open((kind, config, params) => kind.reference(config, params, hidden, at, chunk.carries?.[i], undefined, { embeddings }));
      onLayer?.(layer.index, step.internals, chunk);
      hidden = step.next;
      return step.carry;
    });
    if (withoutHead) return { nll: new Float64Array(0), logits: new Float64Array(chunk.keep.length * model.config.vocabSize), carries };
    return { ...chunkRows(headLogits(model.config, hidden, model.normF, model.lmHead), chunk), carries };
  };
}

function walk(model: LoadedModel<'float64'>, input: F64, options: ForwardOptions, lens?: Lens): { hidden: F64; layers: LayerInternals<Float64Array>[] } {
  const at = resolvePositions(options.statesAt ?? [], input.shape[0]);
  let hidden = input;
  const layers: LayerInternals<Float64Array>[] = [];
  for (const layer of model.layers) {
    options.checkCancelled?.();
    hidden = runLayer(layer, hidden, at, options, layers, { embeddings: input, attentionPattern: options.attentionPattern }, options.edits?.get(layer.index), lens);
  }
  return { hidden, layers };
}

/** The stream with each steering vector added at its tokens (a copy). */
function steered(hidden: F64, edit?: LayerEdit): F64 {
  if (!edit?.steer) return hidden;
  const [L, H] = hidden.shape;
  const data = Float64Array.from(hidden.data);
  for (const s of edit.steer) {
    for (const t of s.tokens) if (t < L) for (let j = 0; j < H; j++) data[t * H + j] += s.scale * s.vector[j];
  }
  return { shape: hidden.shape, data };
}

/** One layer on the stream entering it (edited as `edit` says); keeps its internals (and its logit lens) in `kept` when the options ask. Returns the stream leaving it. */
function runLayer(layer: ModelLayer<'float64'>, input: F64, at: Int32Array, options: ForwardOptions, kept: LayerInternals<Float64Array>[], run: ReferenceRun, edit?: LayerEdit, lens?: Lens): F64 {
  const hidden = steered(input, edit);
  const step = layer.open((kind, config, params) => kind.reference(config, params, hidden, at, undefined, edit, run));
  if (wantsLayer(options, layer.index)) {
    const { h, ...rest } = step.internals;
    const tensors = at.length && h ? { ...rest, h } : rest;
    kept.push({ layer: layer.index, tensors: keptOnly(tensors, options.keep), hTokens: at.length ? at : undefined, ...(lens ? { lens: lens(step.next) } : {}) });
  }
  return step.next;
}
