/**
 * Reads a model's graph: config.json picks the layers' kind (layers/index.ts), the kind declares
 * their parameters, and the backbone's are read around them. The same code runs on a folder in
 * Node and on buffers in the webview.
 */
import { InputError } from '../errors';
import { openCheckpoint } from '../formats/checkpoint';
import type { TensorStore } from '../formats/safetensors';
import type { FileStore } from '../io';
import { kindFor } from '../layers';
import type { ModelLayer } from '../layers/kind';
import { seedConfigFromShapes } from '../layers/seedBlock/params';
import { isLanguageModelConfig, readConfig, type ModelConfig } from './config';
import type { LoadedModel } from './graph';
import { findBackbone, ParamReader, type Precision } from './params';

/** A model folder: config.json + its weights (model.safetensors or pytorch_model.bin, or their shards). */
export async function loadModelFolder<P extends Precision>(files: FileStore, precision: P): Promise<LoadedModel<P>> {
  const config = await readConfig(files);
  return loadModel(config, await openCheckpoint(files), precision);
}

export async function loadModel<P extends Precision>(config: ModelConfig, store: TensorStore, precision: P): Promise<LoadedModel<P>> {
  const kind = kindFor(config);
  const r = new ParamReader(store, precision, `config (${kind.id})`);
  // A block file: one layer, its keys unprefixed.
  if (!isLanguageModelConfig(config)) return { config, layers: [await kind.load(r, '', 0)] };
  const { prefix, embeddingKey } = findBackbone(r);
  const embedding = await r.get(embeddingKey, [config.vocabSize, config.dModel]);
  const layers: ModelLayer<P>[] = [];
  for (let i = 0; i < config.nLayer; i++) layers.push(await kind.load(r, `${prefix}layers.${i}.`, i));
  const normF = await r.get(`${prefix}norm_f.weight`, [config.dModel]);
  const lmHead = r.has('lm_head.weight') ? await r.get('lm_head.weight', [config.vocabSize, config.dModel]) : embedding;
  return { config, embedding, layers, normF, lmHead };
}

/** The simplified block stored alone (block.safetensors): no config.json, shapes from A_log. */
export async function loadSeedBlockFile<P extends Precision>(store: TensorStore, precision: P): Promise<LoadedModel<P>> {
  const aLog = store.info('A_log');
  if (!aLog || aLog.shape.length !== 2) throw new InputError(store.name, 'has no A_log [D, N]: not a simplified-block file');
  return loadModel(seedConfigFromShapes(aLog.shape), store, precision);
}
