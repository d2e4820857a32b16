/**
 * Reads a model's graph: config.json picks the layers' kind (layers/index.ts), the kind declares
 * their parameters, and the backbone's are read around them. The same code runs on a folder in
 * Node and on buffers in the webview.
 */
import { InputError } from '../errors';
import { openCheckpoint } from '../formats/checkpoint';
import type { TensorStore } from '../formats/safetensors';
import type { FileStore } from '../io';
import { kindFor, layerKinds } from '../layers';
import { layerOps, opWidth } from '../layers/hybrid/config';
import type { ModelLayer } from '../layers/kind';
import { seedConfigFromShapes } from '../layers/seedBlock/params';
import { isLanguageModelConfig, readConfig, withGatedNorm, type GatedNorm, type LanguageModelConfig, type ModelConfig } from './config';
import type { LanguageModel, LoadedModel } from './graph';
import { findBackbone, ParamReader, type Param, type Precision } from './params';

/** A model folder: config.json + its weights (model.safetensors or pytorch_model.bin, or their shards); `norm`: whose Mamba-2 gated norm (config.ts: withGatedNorm). */
export async function loadModelFolder<P extends Precision>(files: FileStore, precision: P, norm: GatedNorm = 'mamba_ssm'): Promise<LoadedModel<P>> {
  const config = withGatedNorm(await readConfig(files), norm);
  return loadModel(config, await openCheckpoint(files), precision);
}

export async function loadModel<P extends Precision>(config: LanguageModelConfig, store: TensorStore, precision: P): Promise<LanguageModel<P>>;
export async function loadModel<P extends Precision>(config: ModelConfig, store: TensorStore, precision: P): Promise<LoadedModel<P>>;
export async function loadModel<P extends Precision>(config: ModelConfig, store: TensorStore, precision: P): Promise<LoadedModel<P>> {
  if (!isLanguageModelConfig(config)) {
    // A block file: one layer, its keys unprefixed.
    const kind = kindFor(config);
    return { config, layers: [await kind.load(new ParamReader(store, precision, `config (${kind.id})`), '', 0)] };
  }
  // Resident: a tensor two layers share is read once and held once.
  const { layer, layerCount, ...backbone } = await openModel(config, store, precision, true);
  const layers: ModelLayer<P>[] = [];
  for (let i = 0; i < layerCount; i++) layers.push(await layer(i));
  return { ...backbone, layers };
}

/**
 * A language model whose backbone (embedding, final norm, lm_head) is read now and whose layers
 * are read from the checkpoint one at a time, when a forward reaches them: a model larger than
 * memory runs in the memory of its backbone and one layer (reference/forward.ts:
 * referenceForwardStreamed). The checkpoint is read by byte range, so nothing else is loaded.
 */
export interface StreamedModel<P extends Precision> {
  readonly config: LanguageModelConfig;
  readonly embedding: Param<P>;
  readonly normF: Param<P>;
  readonly lmHead: Param<P>;
  readonly layerCount: number;
  /** Layer i's parameters, read anew on each call. */
  layer(i: number): Promise<ModelLayer<P>>;
}

/** `shareReads`: every layer read is kept (loadModel), so a tensor two layers name is read once (ParamReader). */
export async function openModel<P extends Precision>(config: LanguageModelConfig, store: TensorStore, precision: P, shareReads = false): Promise<StreamedModel<P>> {
  const kinds = layerKinds(config);
  const r = new ParamReader(store, precision, `config (${config.arch === 'hybrid' ? config.family : kinds[0].id})`, shareReads);
  // A hybrid family names its backbone's keys, and its layers' in full; Mamba checkpoints come in three layouts (findBackbone).
  const { prefix, embeddingKey, normKey } = config.arch === 'hybrid'
    ? { prefix: undefined, embeddingKey: config.backbone.embedding, normKey: config.backbone.finalNorm }
    : (({ prefix, embeddingKey }) => ({ prefix, embeddingKey, normKey: `${prefix}norm_f.weight` }))(findBackbone(r));
  const embedding = await r.get(embeddingKey, [config.vocabSize, config.dModel]);
  const normF = await r.get(normKey, [config.dModel]);
  const lmHead = r.has('lm_head.weight') ? await r.get('lm_head.weight', [config.vocabSize, config.dModel]) : embedding;
  return { config, embedding, normF, lmHead, layerCount: config.nLayer, layer: (i) => kinds[i].load(r, prefix === undefined ? '' : `${prefix}layers.${i}.`, i) };
}

/**
 * Values a forward's stream through one layer holds over `tokens` tokens: in_proj's output and a
 * few [L, d_inner] temporaries (a hybrid's widest operation; its attention also holds one row of
 * scores per head, never the [L, L] pattern).
 */
export function streamValues(config: LanguageModelConfig, tokens: number): number {
  if (config.arch !== 'hybrid') return 8 * tokens * config.dInner;
  const widest = Math.max(2 * config.dModel, ...config.layers.flatMap((l) => layerOps(l).map(opWidth)));
  return 4 * tokens * widest + 4 * tokens * config.dModel;
}

/** Values a language model's weights hold: the backbone's, the largest layer's (what a streamed forward holds at once), and all. */
export function weightValues(config: LanguageModelConfig): { backbone: number; layer: number; total: number } {
  const layers = layerKinds(config).map((k) => k.parameterValues);
  const backbone = (config.tieEmbeddings ? 1 : 2) * config.vocabSize * config.dModel + config.dModel;
  return { backbone, layer: Math.max(...layers), total: backbone + layers.reduce((a, b) => a + b, 0) };
}

/** The simplified block stored alone (block.safetensors): no config.json, shapes from A_log. */
export async function loadSeedBlockFile<P extends Precision>(store: TensorStore, precision: P): Promise<LoadedModel<P>> {
  const aLog = store.info('A_log');
  if (!aLog || aLog.shape.length !== 2) throw new InputError(store.name, 'has no A_log [D, N]: not a simplified-block file');
  return loadModel(seedConfigFromShapes(aLog.shape), store, precision);
}
