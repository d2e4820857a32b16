/**
 * The messages the host builds from files for the webview: a tensor on the wire, a tensor file
 * (showDump), a model's weights and vocabulary (loadModel). No vscode import, so the webview
 * tests send the panel exactly what the extension sends.
 */
import { CancelledError, InputError, LimitError } from '../engine/errors';
import { isFloatDType } from '../engine/formats/dtypes';
import type { TensorStore } from '../engine/formats/safetensors';
import type { Mamba1Config, Mamba2Config } from '../engine/model/config';
import { sizeOf, type Tensor } from '../engine/tensor';
import type { MambaTokenizer } from '../engine/tokenizer';
import { toTensorMessage, type DumpParams, type LoadModelParams, type NamedTensors, type Progress, type TensorMessage } from '../protocol';

/** Tensors sent with the first message when all of them fit; beyond that the webview asks per tensor. */
const EAGER_BYTES = 256 * 2 ** 20;
/** The panel's memory budget for weights (issue 7: the webview stays under 2 GB). */
const MAX_WEIGHT_BYTES = 1.5 * 2 ** 30;

/** float32 for float tensors, int32 for integer ones (ids, h_tokens), as the wire carries them. */
export async function wireTensor(store: TensorStore, name: string): Promise<TensorMessage> {
  const info = store.info(name);
  if (!info) throw new InputError(store.name, `has no tensor named "${name}"`);
  if (!isFloatDType(info.dtype)) {
    const t = await store.readNative(name);
    const ids = t.data instanceof Int32Array ? t.data : Int32Array.from(t.data as ArrayLike<number | bigint>, Number);
    return toTensorMessage({ shape: t.shape, data: ids } as Tensor<Int32Array>);
  }
  return toTensorMessage(await store.readFloat(name, 'float32'));
}

/** A tensor file as the viewer shows it: the index, and every tensor when all of them fit in EAGER_BYTES. */
export async function dumpMessage(store: TensorStore, fileName: string): Promise<DumpParams> {
  const index = store.names().map((name) => ({ name, dtype: store.info(name)!.dtype, shape: [...store.info(name)!.shape] }));
  const tensors: NamedTensors = {};
  if (index.reduce((n, t) => n + sizeOf(t.shape) * 4, 0) <= EAGER_BYTES) for (const { name } of index) tensors[name] = await wireTensor(store, name);
  return { name: fileName, metadata: { ...store.metadata }, index, tensors };
}

export interface ModelFiles {
  /** Stable id (the model's URI) and display name. */
  readonly id: string;
  readonly label: string;
  readonly config: Mamba1Config | Mamba2Config;
  readonly tokenizer: MambaTokenizer;
  readonly checkpoint: TensorStore;
}

/** Every checkpoint tensor as float32, keyed by its checkpoint name, and the vocabulary: the loadModel message. */
export async function weightsMessage(model: ModelFiles, signal: AbortSignal, progress: (p: Progress) => void): Promise<LoadModelParams> {
  const { checkpoint } = model;
  const names = checkpoint.names();
  const bytes = names.reduce((sum, n) => sum + sizeOf(checkpoint.info(n)!.shape) * 4, 0);
  if (bytes > MAX_WEIGHT_BYTES) {
    throw new LimitError(checkpoint.name, `needs ${(bytes / 2 ** 30).toFixed(2)} GiB as float32; the panel holds at most 1.5 GiB of weights (about 400M parameters): inspect larger models with the CLI (mamba-scope inspect)`);
  }
  const tensors: NamedTensors = {};
  for (let i = 0; i < names.length; i++) {
    if (signal.aborted) throw new CancelledError(`loading ${model.label}`);
    progress({ stage: 'reading weights', done: i, total: names.length });
    tensors[names[i]] = toTensorMessage(await checkpoint.readFloat(names[i], 'float32'));
  }
  const vocab = Array.from({ length: model.config.vocabSize }, (_, id) => model.tokenizer.tokenText(id));
  return { modelId: model.id, name: model.label, config: model.config, tensors, vocab };
}
