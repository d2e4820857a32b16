/**
 * Picks the architecture from config.json (or, for a bare block file, from its tensors) and
 * reads its parameters. The same code runs on a folder in Node and on buffers in the webview.
 */
import { InputError } from '../errors';
import { openCheckpoint } from '../formats/checkpoint';
import type { TensorStore } from '../formats/safetensors';
import { decodeUtf8, type FileStore } from '../io';
import { parseModelConfig, type Mamba1Config, type Mamba2Config, type ModelConfig, type SeedBlockConfig } from './config';
import { loadMamba1, type Mamba1Params } from './mamba1';
import { loadMamba2, type Mamba2Params } from './mamba2';
import { ParamReader, type Precision } from './params';
import { loadSeedBlock, seedConfigFromShapes, type SeedBlockParams } from './seedBlock';

export type LoadedModel<P extends Precision = Precision> =
  | { readonly config: Mamba1Config; readonly params: Mamba1Params<P> }
  | { readonly config: Mamba2Config; readonly params: Mamba2Params<P> }
  | { readonly config: SeedBlockConfig; readonly params: SeedBlockParams<P> };

export const CONFIG_FILE = 'config.json';

export async function readConfig(files: FileStore): Promise<ModelConfig> {
  const src = await files.open(CONFIG_FILE);
  if (!src) throw new InputError(files.name, `has no ${CONFIG_FILE}`);
  return parseModelConfig(decodeUtf8(await src.read(0, src.size), src.name), src.name);
}

/** A model folder: config.json + model.safetensors (or shards). */
export async function loadModelFolder<P extends Precision>(files: FileStore, precision: P): Promise<LoadedModel<P>> {
  const config = await readConfig(files);
  return loadModel(config, await openCheckpoint(files), precision);
}

export async function loadModel<P extends Precision>(config: ModelConfig, store: TensorStore, precision: P): Promise<LoadedModel<P>> {
  const r = new ParamReader(store, precision, `config (${config.arch})`);
  switch (config.arch) {
    case 'mamba1': return { config, params: await loadMamba1(config, r) };
    case 'mamba2': return { config, params: await loadMamba2(config, r) };
    case 'seed': return { config, params: await loadSeedBlock(config, r) };
  }
}

/** The simplified block stored alone (block.safetensors): no config.json, shapes from A_log. */
export async function loadSeedBlockFile<P extends Precision>(store: TensorStore, precision: P): Promise<LoadedModel<P>> {
  const aLog = store.info('A_log');
  if (!aLog || aLog.shape.length !== 2) throw new InputError(store.name, 'has no A_log [D, N]: not a simplified-block file');
  return loadModel(seedConfigFromShapes(aLog.shape), store, precision);
}
