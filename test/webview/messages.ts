/**
 * The protocol messages the tests send the panel, built by the host's own builders
 * (src/extension/messages.ts) from a model folder (loadModel) or a tensor file (showDump), and a
 * tokenized sample (run).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../../src/engine/formats/checkpoint';
import { SafetensorsFile } from '../../src/engine/formats/safetensors';
import { readConfig } from '../../src/engine/model/config';
import { MambaTokenizer } from '../../src/engine/tokenizer';
import { dumpMessage, weightMessage, weightsMessage } from '../../src/extension/messages';
import { NodeFileSource, NodeFolderStore } from '../../src/node/files';
import type { TensorStore } from '../../src/engine/formats/safetensors';
import type { DumpParams, LoadModelParams, RunParams, TensorMessage } from '../../src/protocol';
import { ROOT } from './server';

export const DEMO_MODEL = join(ROOT, 'assets', 'mamba1-demo');
export const TINY_MODEL = join(ROOT, 'test', 'fixtures', 'mamba1-tiny');
export const SAMPLE1_DUMP = join(ROOT, 'test', 'fixtures', 'dumps', 'mamba1-sample1.safetensors');

/** `tokenizerDir`: where tokenizer.json is, when the model's folder has none (the family fixtures share Jamba's). */
export async function loadModelParams(dir: string, modelId = dir, budget?: number, tokenizerDir = dir): Promise<{ params: LoadModelParams; tokenizer: MambaTokenizer; checkpoint: TensorStore }> {
  const files = new NodeFolderStore(dir);
  const config = await readConfig(files);
  if (config.arch === 'seed') throw new Error(`${dir} is a seed block: the panel loads models with a tokenizer`);
  const tokenizer = MambaTokenizer.fromJson(readFileSync(join(tokenizerDir, 'tokenizer.json'), 'utf8'), 'tokenizer.json');
  const checkpoint = await openCheckpoint(files);
  const model = { id: modelId, label: dir.split('/').pop()!, config, tokenizer, checkpoint };
  return { params: await weightsMessage(model, new AbortController().signal, () => {}, budget), tokenizer, checkpoint };
}

/** The loadModel message of a model streamed under `budget` bytes, and what the host answers to readWeight for each of its layers' tensors. */
export async function streamedModelParams(dir: string, modelId: string, budget: number): Promise<{ params: LoadModelParams; layerTensors: Record<string, TensorMessage> }> {
  const { params, checkpoint } = await loadModelParams(dir, modelId, budget);
  const layerTensors: Record<string, TensorMessage> = {};
  for (const { name } of params.streamed ?? []) layerTensors[name] = await weightMessage(checkpoint, name);
  return { params, layerTensors };
}

export function runParams(runId: string, modelId: string, text: string, tokenizer: MambaTokenizer, settings: RunParams['settings'] = { backend: 'auto', memoryLimitMB: 1200 }): RunParams {
  const e = tokenizer.encode(text);
  return { runId, modelId, sampleName: runId, ids: e.ids.buffer as ArrayBuffer, tokens: e.tokens, offsets: e.offsets, settings };
}

/** The showDump message of a tensor file small enough to go whole (every tensor in `tensors`). */
export async function dumpParams(file: string): Promise<DumpParams> {
  return dumpMessage(await SafetensorsFile.open(await NodeFileSource.open(file)), file.split('/').pop()!);
}
