/**
 * Protocol messages built in Node exactly as the extension host builds them: a model folder's
 * float32 weights + vocabulary (loadModel), a tokenized sample (run), a tensor file (showDump).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isFloatDType } from '../../src/engine/formats/dtypes';
import { openCheckpoint } from '../../src/engine/formats/checkpoint';
import { SafetensorsFile, type TensorStore } from '../../src/engine/formats/safetensors';
import { readConfig } from '../../src/engine/model/load';
import type { Tensor } from '../../src/engine/tensor';
import { MambaTokenizer } from '../../src/engine/tokenizer';
import { NodeFileSource, NodeFolderStore } from '../../src/node/files';
import { toTensorMessage, type DumpParams, type LoadModelParams, type NamedTensors, type RunParams, type TensorMessage } from '../../src/protocol';
import { ROOT } from './server';

export const DEMO_MODEL = join(ROOT, 'assets', 'mamba1-demo');
export const TINY_MODEL = join(ROOT, 'test', 'fixtures', 'mamba1-tiny');
export const SAMPLE1_DUMP = join(ROOT, 'test', 'fixtures', 'dumps', 'mamba1-sample1.safetensors');

export async function tensorMessage(store: TensorStore, name: string): Promise<TensorMessage> {
  const info = store.info(name)!;
  if (isFloatDType(info.dtype)) return toTensorMessage(await store.readFloat(name, 'float32'));
  const t = await store.readNative(name);
  return toTensorMessage({ shape: t.shape, data: Int32Array.from(t.data as ArrayLike<number>) } as Tensor<Int32Array>);
}

export async function loadModelParams(dir: string, modelId = dir): Promise<{ params: LoadModelParams; tokenizer: MambaTokenizer }> {
  const files = new NodeFolderStore(dir);
  const config = await readConfig(files);
  const checkpoint = await openCheckpoint(files);
  const tensors: NamedTensors = {};
  for (const name of checkpoint.names()) tensors[name] = toTensorMessage(await checkpoint.readFloat(name, 'float32'));
  const tokenizer = MambaTokenizer.fromJson(readFileSync(join(dir, 'tokenizer.json'), 'utf8'), 'tokenizer.json');
  const vocab = Array.from({ length: config.arch === 'seed' ? 0 : config.vocabSize }, (_, id) => tokenizer.tokenText(id));
  return { params: { modelId, name: dir.split('/').pop()!, config, tensors, vocab }, tokenizer };
}

export function runParams(runId: string, modelId: string, text: string, tokenizer: MambaTokenizer, settings: RunParams['settings'] = { backend: 'auto', memoryLimitMB: 1200 }): RunParams {
  const e = tokenizer.encode(text);
  return { runId, modelId, sampleName: runId, ids: e.ids.buffer as ArrayBuffer, tokens: e.tokens, offsets: e.offsets, settings };
}

export async function dumpParams(file: string, eager = true): Promise<{ params: DumpParams; all: NamedTensors }> {
  const store = await SafetensorsFile.open(await NodeFileSource.open(file));
  const all: NamedTensors = {};
  for (const name of store.names()) all[name] = await tensorMessage(store, name);
  const index = store.names().map((name) => ({ name, dtype: store.info(name)!.dtype, shape: [...store.info(name)!.shape] }));
  return { params: { name: file.split('/').pop()!, metadata: { ...store.metadata }, index, tensors: eager ? all : {} }, all };
}
