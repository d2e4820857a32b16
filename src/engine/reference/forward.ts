/**
 * The float64 reference forward: the numerics oracle every other path is tested against. It
 * walks the model's layers, calling each layer's kind (the reference.ts of its folder in layers/, a direct
 * transcription of transformers' module code); the backbone's embedding, final norm and lm_head
 * are here.
 */
import { keptOnly, resolvePositions, wantsLayer, type ForwardOptions, type ForwardResult, type LayerInternals } from '../internals';
import type { ModelLayer } from '../layers/kind';
import { isLanguageModel, type LoadedModel } from '../model/graph';
import type { StreamedModel } from '../model/load';
import { embed, linear, rmsNorm, type F64 } from './ops';

export function referenceForward(model: LoadedModel<'float64'>, ids: ArrayLike<number>, options: ForwardOptions = {}): ForwardResult<Float64Array> {
  if (!isLanguageModel(model)) throw new Error('the simplified block takes a hidden-state input, not token ids: use referenceLayers');
  const { hidden, layers } = walk(model, embed(ids, model.embedding), options);
  return { logits: linear(rmsNorm(hidden, model.normF, model.config.eps), model.lmHead), layers };
}

/** The layers alone, on a hidden-state input [L, d_model] (the simplified block's run-block). */
export function referenceLayers(model: LoadedModel<'float64'>, x: F64, options: ForwardOptions = {}): ForwardResult<Float64Array> {
  return { layers: walk(model, x, options).layers };
}

/**
 * The same forward over a StreamedModel: each layer is read from the checkpoint when the stream
 * reaches it and let go after, so the weights held are the backbone's and one layer's.
 */
export async function referenceForwardStreamed(model: StreamedModel<'float64'>, ids: ArrayLike<number>, options: ForwardOptions = {}): Promise<ForwardResult<Float64Array>> {
  let hidden = embed(ids, model.embedding);
  const at = resolvePositions(options.statesAt ?? [], hidden.shape[0]);
  const layers: LayerInternals<Float64Array>[] = [];
  for (let i = 0; i < model.layerCount; i++) {
    options.checkCancelled?.();
    hidden = runLayer(await model.layer(i), hidden, at, options, layers);
  }
  return { logits: linear(rmsNorm(hidden, model.normF, model.config.eps), model.lmHead), layers };
}

function walk(model: LoadedModel<'float64'>, input: F64, options: ForwardOptions): { hidden: F64; layers: LayerInternals<Float64Array>[] } {
  const at = resolvePositions(options.statesAt ?? [], input.shape[0]);
  let hidden = input;
  const layers: LayerInternals<Float64Array>[] = [];
  for (const layer of model.layers) {
    options.checkCancelled?.();
    hidden = runLayer(layer, hidden, at, options, layers);
  }
  return { hidden, layers };
}

/** One layer on the stream entering it; keeps its internals in `kept` when the options ask. Returns the stream leaving it. */
function runLayer(layer: ModelLayer<'float64'>, hidden: F64, at: Int32Array, options: ForwardOptions, kept: LayerInternals<Float64Array>[]): F64 {
  const step = layer.open((kind, config, params) => kind.reference(config, params, hidden, at));
  if (wantsLayer(options, layer.index)) {
    const { h, ...rest } = step.internals;
    const tensors = at.length && h ? { ...rest, h } : rest;
    kept.push({ layer: layer.index, tensors: keptOnly(tensors, options.keep), hTokens: at.length ? at : undefined });
  }
  return step.next;
}
