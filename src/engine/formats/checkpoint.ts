/**
 * A model's weights as one TensorStore: a single model.safetensors, or shards listed by
 * model.safetensors.index.json (its weight_map names the shard of every tensor).
 */
import { InputError } from '../errors';
import { decodeUtf8, type FileStore } from '../io';
import type { Tensor } from '../tensor';
import { SafetensorsFile, type TensorStore } from './safetensors';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export async function openCheckpoint(store: FileStore): Promise<TensorStore> {
  const single = await store.open(SINGLE_FILE);
  if (single) return SafetensorsFile.open(single);
  const index = await store.open(INDEX_FILE);
  if (!index) {
    throw new InputError(store.name, `has no ${SINGLE_FILE} or ${INDEX_FILE} (PyTorch .bin/.pt checkpoints are not read: convert them to safetensors)`);
  }
  return ShardedCheckpoint.open(store, index.name, decodeUtf8(await index.read(0, index.size), index.name));
}

class ShardedCheckpoint implements TensorStore {
  private constructor(
    readonly name: string,
    private readonly shardOf: ReadonlyMap<string, SafetensorsFile>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  static async open(store: FileStore, indexName: string, text: string): Promise<ShardedCheckpoint> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new InputError(indexName, 'is not valid JSON');
    }
    const weightMap = (parsed as { weight_map?: unknown } | null)?.weight_map;
    if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
      throw new InputError(indexName, 'has no "weight_map" object');
    }
    const shards = new Map<string, SafetensorsFile>();
    const shardOf = new Map<string, SafetensorsFile>();
    for (const [tensor, shardName] of Object.entries(weightMap)) {
      if (typeof shardName !== 'string' || shardName.includes('..') || shardName.startsWith('/')) {
        throw new InputError(indexName, `weight_map["${tensor}"] is not a shard file name in the model folder`);
      }
      let shard = shards.get(shardName);
      if (!shard) {
        const source = await store.open(shardName);
        if (!source) throw new InputError(indexName, `names shard "${shardName}", which does not exist`);
        shard = await SafetensorsFile.open(source);
        shards.set(shardName, shard);
      }
      if (!shard.info(tensor)) throw new InputError(shard.name, `has no tensor "${tensor}", which ${indexName} places there`);
      shardOf.set(tensor, shard);
    }
    const metadata = Object.assign({}, ...[...shards.values()].map((s) => s.metadata)) as Record<string, string>;
    return new ShardedCheckpoint(store.name, shardOf, metadata);
  }

  names(): string[] {
    return [...this.shardOf.keys()];
  }

  info(name: string) {
    return this.shardOf.get(name)?.info(name);
  }

  private shard(name: string): SafetensorsFile {
    const s = this.shardOf.get(name);
    if (!s) throw new InputError(this.name, `has no tensor named "${name}"`);
    return s;
  }

  readFloat(name: string, precision: 'float32'): Promise<Tensor<Float32Array>>;
  readFloat(name: string, precision: 'float64'): Promise<Tensor<Float64Array>>;
  readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>>;
  async readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>> {
    return this.shard(name).readFloat(name, precision);
  }

  async readNative(name: string): Promise<Tensor> {
    return this.shard(name).readNative(name);
  }
}
