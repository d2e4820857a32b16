/**
 * Reading a model's parameters from a checkpoint against a declared list of keys and shapes.
 * Each architecture module declares what it needs; this module does the reading and gives one
 * clear error for a missing tensor or a shape that disagrees with config.json.
 */
import { InputError } from '../errors';
import type { TensorStore } from '../formats/safetensors';
import { shapeString, type Tensor } from '../tensor';

export type Precision = 'float32' | 'float64';
export type FloatOf<P extends Precision> = P extends 'float64' ? Float64Array : Float32Array;
export type Param<P extends Precision> = Tensor<FloatOf<P>>;

export class ParamReader<P extends Precision> {
  /** Tensors read so far, when reads are shared (`shareReads`). */
  private readonly read: Map<string, Promise<Tensor>> | undefined;

  /**
   * `shareReads`: a key read again gives the tensor read the first time (Zamba2's shared block is
   * in every layer that uses it: one copy in memory, one read of the checkpoint or the host).
   */
  constructor(readonly store: TensorStore, readonly precision: P, private readonly configName: string, shareReads = false) {
    this.read = shareReads ? new Map() : undefined;
  }

  has(key: string): boolean {
    return this.store.info(key) !== undefined;
  }

  /**
   * Reads `key`, checking its shape. `as` reshapes a checked tensor (conv1d's [D,1,K] → [D,K]).
   */
  async get(key: string, shape: readonly number[], as?: readonly number[]): Promise<Param<P>> {
    const info = this.store.info(key);
    if (!info) throw new InputError(this.store.name, `is missing tensor "${key}" that ${this.configName} requires`);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new InputError(this.store.name, `tensor "${key}" has shape ${shapeString(info.shape)} but ${this.configName} implies ${shapeString(shape)}`);
    }
    let pending = this.read?.get(key);
    if (!pending) {
      pending = this.store.readFloat(key, this.precision);
      this.read?.set(key, pending);
    }
    const t = (await pending) as Param<P>;
    return as ? { shape: as, data: t.data } : t;
  }

  async optional(key: string, shape: readonly number[]): Promise<Param<P> | undefined> {
    return this.has(key) ? this.get(key, shape) : undefined;
  }

  /** The first of `keys` that exists, or an error naming all of them. */
  firstOf(keys: readonly string[]): string {
    const k = keys.find((key) => this.has(key));
    if (!k) throw new InputError(this.store.name, `has none of ${keys.map((x) => `"${x}"`).join(', ')}: not a Mamba checkpoint in a known layout`);
    return k;
  }
}

/**
 * Checkpoints come as *ForCausalLM (`backbone.` prefix), bare MambaModel (no prefix) or
 * mamba_ssm (`backbone.embedding.weight`). Returns the prefix and the embedding key.
 */
export function findBackbone<P extends Precision>(r: ParamReader<P>): { prefix: string; embeddingKey: string } {
  const embeddingKey = r.firstOf(['backbone.embeddings.weight', 'backbone.embedding.weight', 'embeddings.weight', 'embedding.weight']);
  return { prefix: embeddingKey.startsWith('backbone.') ? 'backbone.' : '', embeddingKey };
}
