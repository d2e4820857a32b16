/**
 * A model's weights as one TensorStore: a single model.safetensors, or shards listed by
 * model.safetensors.index.json (its weight_map names the shard of every tensor). Folders with no
 * safetensors (state-spaces/mamba-* ship only torch.save files) are read the same way from
 * pytorch_model.bin or pytorch_model.bin.index.json, through the reader that runs no pickle code.
 */
import { InputError } from '../errors';
import { decodeUtf8, type ByteSource, type FileStore } from '../io';
import type { Tensor } from '../tensor';
import { SafetensorsFile, type TensorStore } from './safetensors';
import { TorchCheckpoint } from './torchCheckpoint';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
export const TORCH_FILE = 'pytorch_model.bin';
export const TORCH_INDEX_FILE = 'pytorch_model.bin.index.json';

type OpenShard = (source: ByteSource) => Promise<TensorStore>;

/** In order of preference: safetensors first, as transformers loads them. */
const LAYOUTS: readonly { single: string; index: string; open: OpenShard }[] = [
  { single: SINGLE_FILE, index: INDEX_FILE, open: (s) => SafetensorsFile.open(s) },
  { single: TORCH_FILE, index: TORCH_INDEX_FILE, open: (s) => TorchCheckpoint.open(s) },
];

export async function openCheckpoint(store: FileStore): Promise<TensorStore> {
  for (const { single, index, open } of LAYOUTS) {
    const file = await store.open(single);
    if (file) return open(file);
    const indexFile = await store.open(index);
    if (indexFile) return ShardedCheckpoint.open(store, indexFile.name, decodeUtf8(await indexFile.read(0, indexFile.size), indexFile.name), open);
  }
  throw new InputError(store.name, `has no model weights (none of ${LAYOUTS.flatMap((l) => [l.single, l.index]).join(', ')})`);
}

class ShardedCheckpoint implements TensorStore {
  private constructor(
    readonly name: string,
    private readonly shardOf: ReadonlyMap<string, TensorStore>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  static async open(store: FileStore, indexName: string, text: string, openShard: OpenShard): Promise<ShardedCheckpoint> {
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
    const shards = new Map<string, TensorStore>();
    const shardOf = new Map<string, TensorStore>();
    for (const [tensor, shardName] of Object.entries(weightMap)) {
      if (typeof shardName !== 'string' || shardName.includes('..') || shardName.startsWith('/')) {
        throw new InputError(indexName, `weight_map["${tensor}"] is not a shard file name in the model folder`);
      }
      let shard = shards.get(shardName);
      if (!shard) {
        const source = await store.open(shardName);
        if (!source) throw new InputError(indexName, `names shard "${shardName}", which does not exist`);
        shard = await openShard(source);
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

  private shard(name: string): TensorStore {
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
