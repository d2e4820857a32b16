/**
 * The messages the host builds from files for the webview: a tensor on the wire, a tensor file
 * (showDump), a model's weights and vocabulary (loadModel), what interventions read. No vscode import, so the webview
 * tests send the panel exactly what the extension sends.
 */
import { CancelledError, InputError, LimitError } from '../engine/errors';
import { isFloatDType } from '../engine/formats/dtypes';
import type { TensorStore } from '../engine/formats/safetensors';
import type { LanguageModelConfig } from '../engine/model/config';
import { sizeOf, type Tensor } from '../engine/tensor';
import type { MambaTokenizer } from '../engine/tokenizer';
import { toHalfMessage, toTensorMessage, type DumpParams, type InterventionInputMessage, type LoadModelParams, type NamedTensors, type Progress, type TensorIndexEntry, type TensorMessage } from '../protocol';
import type { Intervention } from '../engine/interventions';
import { readInterventionInputs, type OpenTensors } from '../engine/interventionInputs';

/** Tensors sent with the first message when all of them fit; beyond that the webview asks per tensor. */
const EAGER_BYTES = 256 * 2 ** 20;
/** The panel's memory budget for weights sent at once, or for the backbone and one layer of a streamed model (issue 7: the webview stays under 2 GB). */
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
  readonly config: LanguageModelConfig;
  /** Only each id's text is read (the vocabulary the next-token view shows). */
  readonly tokenizer: Pick<MambaTokenizer, 'tokenText'>;
  readonly checkpoint: TensorStore;
}

/** A weight on the wire: in its 16-bit form when the checkpoint stores it so (half the bytes), else float32. */
export async function weightMessage(checkpoint: TensorStore, name: string): Promise<TensorMessage> {
  const dtype = checkpoint.info(name)?.dtype;
  const t = await checkpoint.readFloat(name, 'float32');
  return dtype === 'BF16' ? toHalfMessage(t, 'bfloat16') : dtype === 'F16' ? toHalfMessage(t, 'float16') : toTensorMessage(t);
}

/** A layer's tensors are named `…layers.<i>.…` in every layout the loaders read; the rest is the backbone. */
const LAYER_KEY = /(?:^|\.)layers\.(\d+)\./;

/**
 * The loadModel message: the checkpoint's tensors, keyed by name, and the vocabulary. A model
 * whose weights exceed the panel's budget as float32 is streamed: the message carries the backbone
 * and names the layers' tensors, which the panel asks for (readWeight) a layer at a time; one that
 * does not fit even so is refused with the numbers. `budget`: the float32 bytes the panel takes
 * at once (MAX_WEIGHT_BYTES; the tests stream small models with less).
 */
export async function weightsMessage(model: ModelFiles, signal: AbortSignal, progress: (p: Progress) => void, budget = MAX_WEIGHT_BYTES): Promise<LoadModelParams> {
  const { checkpoint } = model;
  const names = checkpoint.names();
  const f32 = (name: string) => sizeOf(checkpoint.info(name)!.shape) * 4;
  const bytes = names.reduce((sum, n) => sum + f32(n), 0);
  const gib = (b: number) => (b / 2 ** 30).toFixed(2);
  let sent = names;
  let streamed: TensorIndexEntry[] | undefined;
  if (bytes > budget) {
    const perLayer = new Map<string, number>();
    for (const n of names) {
      const layer = LAYER_KEY.exec(n)?.[1];
      if (layer !== undefined) perLayer.set(layer, (perLayer.get(layer) ?? 0) + f32(n));
    }
    sent = names.filter((n) => !LAYER_KEY.test(n));
    const backbone = sent.reduce((sum, n) => sum + f32(n), 0);
    const layer = Math.max(0, ...perLayer.values());
    if (backbone + layer > budget) {
      throw new LimitError(checkpoint.name, `needs ${gib(bytes)} GiB as float32, and even a layer at a time its embedding and lm_head (${gib(backbone)} GiB) and one layer (${gib(layer)} GiB) exceed the panel's ${gib(budget)} GiB for weights: inspect it with the CLI (mamba-scope inspect streams it from disk)`);
    }
    streamed = names.filter((n) => LAYER_KEY.test(n)).map((name) => ({ name, dtype: checkpoint.info(name)!.dtype, shape: [...checkpoint.info(name)!.shape] }));
  }
  const tensors: NamedTensors = {};
  for (let i = 0; i < sent.length; i++) {
    if (signal.aborted) throw new CancelledError(`loading ${model.label}`);
    progress({ stage: 'reading weights', done: i, total: sent.length });
    tensors[sent[i]] = await weightMessage(checkpoint, sent[i]);
  }
  const vocab = Array.from({ length: model.config.vocabSize }, (_, id) => model.tokenizer.tokenText(id));
  return { modelId: model.id, name: model.label, config: model.config, tensors, vocab, ...(streamed ? { streamed } : {}) };
}

/**
 * What the panel's interventions read from files, as the protocol carries it:
 * read by the engine's readInterventionInputs, the CLI's reader, so the panel and `inspect
 * --intervene` take the same vectors and states and refuse the same files.
 */
export async function interventionInputsMessage(interventions: readonly Intervention[], tokens: number, config: LanguageModelConfig, open: OpenTensors): Promise<InterventionInputMessage[]> {
  const inputs = await readInterventionInputs(interventions, tokens, config, open);
  const f32 = (data: Float64Array) => toTensorMessage({ shape: [data.length], data: Float32Array.from(data) });
  return interventions.map((i) => {
    const input = inputs.get(i);
    if (!input) return null;
    if (input instanceof Float64Array) return { vector: f32(input) };
    return { patch: { token: input.token, h: f32(input.h), conv: f32(input.conv) } };
  });
}
