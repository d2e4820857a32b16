/**
 * The registry of layer kinds: which kind a config.json describes. Adding a kind is its folder
 * and one entry here.
 */
import { InputError } from '../errors';
import type { ModelConfig } from '../model/config';
import { configure, type ConfiguredKind, type LayerKind, type ParamSpecs, type TfWeights } from './kind';
import { mamba1 } from './mamba1';
import { mamba2 } from './mamba2';
import { seedBlock } from './seedBlock';

/** A kind, asked whether it describes a config and bound to it when it does. */
type Entry = (config: ModelConfig) => ConfiguredKind | undefined;

function entry<C extends ModelConfig, S extends ParamSpecs<C>, T extends TfWeights, G>(kind: LayerKind<C, S, T, G>): Entry {
  return (config) => (kind.accepts(config) ? configure(kind, config) : undefined);
}

const KINDS: readonly Entry[] = [entry(mamba1), entry(mamba2), entry(seedBlock)];

/** The kind of every layer of a model with this config. */
export function kindFor(config: ModelConfig): ConfiguredKind {
  for (const accept of KINDS) {
    const kind = accept(config);
    if (kind) return kind;
  }
  throw new InputError('config', `describes no layer kind this build knows (${JSON.stringify(config)})`);
}
