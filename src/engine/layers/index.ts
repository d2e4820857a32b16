/**
 * The registry of layer kinds: which kind a config.json describes. Adding a kind is its folder
 * and one entry here.
 */
import { InputError } from '../errors';
import type { ModelConfig } from '../model/config';
import { configure, type ConfiguredKind, type LayerConfig, type LayerKind, type ParamSpecs, type TfWeights } from './kind';
import { hybridLayer } from './hybrid';
import { mamba1 } from './mamba1';
import { mamba2 } from './mamba2';
import { seedBlock } from './seedBlock';

/** A kind, asked whether it describes a config and bound to it when it does. */
type Entry = (config: ModelConfig) => ConfiguredKind | undefined;

function entry<C extends LayerConfig, S extends ParamSpecs<C>, T extends TfWeights, G>(kind: LayerKind<C, S, T, G>): Entry {
  return (config) => (kind.accepts(config) ? configure(kind, config) : undefined);
}

const KINDS: readonly Entry[] = [entry(mamba1), entry(mamba2), entry(seedBlock)];

/**
 * Each layer's kind, in order: a hybrid model's layers are each the hybrid kind bound to that
 * layer's composition; every layer of another model has the one kind its config describes.
 */
export function layerKinds(config: ModelConfig): readonly ConfiguredKind[] {
  if (config.arch === 'hybrid') return config.layers.map((layer) => configure(hybridLayer, layer));
  const kind = kindFor(config);
  return 'nLayer' in config ? Array.from({ length: config.nLayer }, () => kind) : [kind];
}

/** The kind of every layer of a model with this config (one kind for all: not a hybrid). */
export function kindFor(config: ModelConfig): ConfiguredKind {
  if (config.arch === 'hybrid') throw new InputError(`${config.family} config`, 'is a hybrid: its layers have different kinds (layerKinds)');
  for (const accept of KINDS) {
    const kind = accept(config);
    if (kind) return kind;
  }
  throw new InputError('config', `describes no layer kind this build knows (${JSON.stringify(config)})`);
}
