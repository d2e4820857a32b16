/**
 * `inspect`: run a model on a text (or ids) and write every internal to a mamba-dump/1 file.
 * fp64 runs the float64 reference; fp32 runs the tfjs forward on cpu or wasm, or the native
 * WebGPU forward (Dawn) on webgpu.
 */
import { hiddenAttentionAsync } from '../../engine/analysis/attention';
import { layerDecay } from '../../engine/analysis/retention';
import { InputError, LimitError } from '../../engine/errors';
import { buildDump } from '../../engine/formats/dump';
import { encodeSafetensors } from '../../engine/formats/safetensors';
import { keptValues, type ForwardOptions, type ForwardResult } from '../../engine/internals';
import { isLanguageModel, type LanguageModel } from '../../engine/model/graph';
import { topK } from '../../engine/predictions';
import { referenceForward } from '../../engine/reference/forward';
import { createTfModel, tfjsForward } from '../../engine/tfjs/forward';
import { mean, type Tensor } from '../../engine/tensor';
import { WebGpuModel } from '../../engine/webgpu/model';
import type { WeightFormat } from '../../engine/webgpu/weightFormat';
import { useNodeBackend } from '../../node/tfjsBackends';
import { createDawnDevice } from '../../node/webgpu';
import { UsageError, flag, intList, layerList, oneOf, optional, parseArgs, positiveInt, required } from '../args';
import type { Command } from '../command';
import { loadModelArg, loadTokenizer, readTextFile, writeOutput } from '../modelArgs';
import { attentionWork, forwardWork, layerTicks, MAX_SECONDS_OPTION, MAX_SECONDS_USAGE, maxSecondsOf, RATES, RunBudget, type Phase, type Tick } from '../runBudget';

const USAGE = `usage: mamba-scope inspect [--model <dir|file>] (--text <file> | --ids 1,2,3) --out <dump.safetensors>
                          [--precision fp64|fp32] [--backend reference|cpu|wasm|webgpu]
                          [--layers all|0,2] [--states-at 0,57,-1] [--max-tokens N] [--attention]
                          [--max-memory MB] [--max-seconds S] [--gpu-weights f32|f16]

Runs the model on the sample and writes a mamba-dump/1 file: input_ids, logits and, per layer,
hidden_in, z, u, delta, B, C, y, out, hidden_out (+ h and h_tokens with --states-at).
  --model       model folder (config.json, model.safetensors, tokenizer.json); default: the bundled model
  --precision   fp64 = float64 reference (default; backend "reference"), fp32 = the others
  --backend     for fp32: tfjs cpu (default) or wasm, or webgpu (the native WebGPU forward,
                through Dawn: the GPU, or SwiftShader on a machine without one)
  --states-at   token positions whose state h is saved; negative counts from the end
  --max-tokens  keep only the first N tokens
  --attention   add layers.i.hidden_attention [L, L]: the implicit attention, mean over channels
  --max-memory  refuse runs whose kept tensors would exceed this many MB (default 4096)
  --gpu-weights with --backend webgpu: the projections in f32 (default) or f16, half the GPU
                memory; f16 is outside mamba_ssm's fp32 tolerance on some models (docs/PERFORMANCE.md)
${MAX_SECONDS_USAGE}`;

type Backend = 'reference' | 'cpu' | 'wasm' | 'webgpu';

export const inspect: Command = {
  name: 'inspect',
  summary: 'run a model on a text and write its internals to a dump',
  usage: USAGE,
  async run(argv, io) {
    const args = parseArgs(argv, {
      model: { value: true }, text: { value: true }, ids: { value: true }, out: { value: true },
      precision: { value: true }, backend: { value: true }, layers: { value: true },
      'states-at': { value: true }, 'max-tokens': { value: true }, attention: { value: false },
      'max-memory': { value: true }, 'gpu-weights': { value: true }, ...MAX_SECONDS_OPTION,
    });
    const out = required(args, 'out');
    const textFile = optional(args, 'text');
    const idList = intList(args, 'ids');
    if ((textFile === undefined) === (idList === undefined)) throw new UsageError('give exactly one of --text or --ids');
    const precision = oneOf(args, 'precision', ['fp64', 'fp32'] as const, optional(args, 'backend') && optional(args, 'backend') !== 'reference' ? 'fp32' : 'fp64');
    const backend = oneOf<Backend>(args, 'backend', ['reference', 'cpu', 'wasm', 'webgpu'], precision === 'fp64' ? 'reference' : 'cpu');
    if ((precision === 'fp64') !== (backend === 'reference')) throw new UsageError('fp64 runs on the reference backend only; fp32 on cpu, wasm or webgpu');
    const gpuWeights = oneOf(args, 'gpu-weights', ['f32', 'f16'] as const, 'f32');
    if (optional(args, 'gpu-weights') !== undefined && backend !== 'webgpu') throw new UsageError('--gpu-weights applies to --backend webgpu only');
    const maxTokens = positiveInt(args, 'max-tokens');
    const statesAt = intList(args, 'states-at') ?? [];
    const attention = flag(args, 'attention');
    const budget = new RunBudget('inspect', io, maxSecondsOf(args));

    const { dir, model } = await loadModelArg(optional(args, 'model'), precision === 'fp64' ? 'float64' : 'float32');
    if (!isLanguageModel(model)) throw new InputError(dir, 'is a simplified block, which takes hidden states: use run-block');
    let ids: Int32Array;
    let pieces: string[];
    if (textFile !== undefined) {
      const text = await readTextFile(textFile);
      const tokenizer = await loadTokenizer(dir);
      ({ ids, pieces } = tokenizer.encode(text));
      if (ids.length === 0) throw new InputError(textFile, 'has no tokens (empty sample)');
    } else {
      ids = Int32Array.from(idList as number[]);
      pieces = [...ids].map(String);
      if (ids.length === 0) throw new UsageError('--ids is empty');
    }
    if (maxTokens !== undefined && ids.length > maxTokens) {
      io.err(`note: keeping the first ${maxTokens} of ${ids.length} tokens (--max-tokens)`);
      ids = ids.slice(0, maxTokens);
      pieces = pieces.slice(0, maxTokens);
    }
    const layers = layerList(args, 'layers', model.config.nLayer);
    checkMemory(model, ids.length, layers.length, statesAt.length, attention, precision, positiveInt(args, 'max-memory') ?? 4096);
    const options: ForwardOptions = { layers, statesAt: checkPositions(statesAt, ids.length) };
    for (const id of ids) if (id < 0 || id >= model.config.vocabSize) throw new InputError(textFile ?? '--ids', `token id ${id} is outside the model's ${model.config.vocabSize}-token vocabulary`);

    budget.plan(plan(model, backend, ids.length, layers.length, attention), 'use fewer tokens (--max-tokens)' + (attention ? ' or fewer layers (--layers)' : ''));

    const result = await budget.phase('forward', model.config.nLayer, (tick) => forward(model, backend, ids, { ...options, checkCancelled: layerTicks(tick) }, gpuWeights));
    const extras = attention ? await budget.phase('attention', result.layers.length * channelsOf(model), (tick) => attentionOf(model, result, tick)) : undefined;
    const { entries, metadata } = buildDump({
      inputIds: ids,
      pieces,
      result,
      extras,
      metadata: { model: dir, arch: model.config.arch, dtype: precision === 'fp64' ? 'float64' : 'float32', backend },
    });
    await writeOutput(out, encodeSafetensors(entries, metadata));

    io.out(`model     ${dir} (${model.config.arch}, ${model.config.nLayer} layers, d_model ${model.config.dModel})`);
    io.out(`tokens    ${ids.length}${textFile ? ` from ${textFile}` : ''}`);
    io.out(`backend   ${backend} (${precision}${backend === 'webgpu' ? `, ${gpuWeights} weights` : ''})`);
    for (const l of result.layers) io.out(`layer ${String(l.layer).padEnd(3)} mean Δ ${mean(l.tensors.delta?.data ?? []).toPrecision(4)}`);
    if (result.logits) {
      const tokenizer = textFile !== undefined ? await loadTokenizer(dir) : null;
      const top = topK(result.logits, ids.length - 1, 5)
        .map((p) => `${JSON.stringify(tokenizer ? tokenizer.tokenText(p.id) : String(p.id))} ${(p.prob * 100).toFixed(1)}%`);
      io.out(`next      ${top.join('  ')}`);
    }
    io.out(`wrote     ${out}`);
    io.out(`time      ${budget.summary()}`);
    return 0;
  },
};

async function forward(model: LanguageModel, backend: Backend, ids: Int32Array, options: ForwardOptions, gpuWeights: WeightFormat): Promise<ForwardResult> {
  if (backend === 'reference') return referenceForward(model as LanguageModel<'float64'>, ids, options);
  if (backend === 'webgpu') return nativeForward(model as LanguageModel<'float32'>, ids, options, gpuWeights);
  await useNodeBackend(backend);
  const tfModel = createTfModel(model as LanguageModel<'float32'>);
  try {
    return await tfjsForward(tfModel, ids, options);
  } finally {
    tfModel.dispose();
  }
}

/** The native WebGPU forward through Dawn: the GPU if the machine has one, else SwiftShader. */
async function nativeForward(model: LanguageModel<'float32'>, ids: Int32Array, options: ForwardOptions, weights: WeightFormat): Promise<ForwardResult> {
  const { device, info } = await createDawnDevice();
  try {
    const gpu = WebGpuModel.upload(device, model, { software: info.software, weights });
    return await gpu.forward(ids, options);
  } finally {
    device.destroy();
  }
}

/** What the kept tensors will take: the layers' internals, their [L, L] attention and the logits. Refused before any work is done. */
function checkMemory(model: LanguageModel, L: number, layers: number, states: number, attention: boolean, precision: string, limitMb: number): void {
  const c = model.config;
  const values = keptValues(c, { tokens: L, layers, states }) + (attention ? layers * L * L : 0) + L * c.vocabSize;
  const bytes = values * (precision === 'fp64' ? 8 : 4);
  if (bytes > limitMb * 1e6) {
    throw new LimitError('inspect', `keeping ${layers} layers' internals for ${L} tokens needs ${(bytes / 1e6).toFixed(0)} MB, over the --max-memory limit of ${limitMb} MB: keep fewer layers (--layers), fewer tokens (--max-tokens), or raise --max-memory`);
  }
}

/** The forward over every layer, then the implicit attention of the kept layers (its cost grows with L²). */
function plan(model: LanguageModel, backend: Backend, L: number, keptLayers: number, attention: boolean): Phase[] {
  const phases: Phase[] = [{ name: 'forward', work: forwardWork(model, L), rate: RATES[backend] }];
  if (attention) phases.push({ name: 'attention', work: keptLayers * attentionWork(channelsOf(model), L, model.config.dState), rate: RATES.attention });
  return phases;
}

/** Channels of the implicit attention: the columns of Δ (Mamba-1's D channels, Mamba-2's heads). */
function channelsOf(model: LanguageModel): number {
  return model.layers[0].scanView().deltaWidth;
}

/** The implicit attention of every kept layer, from its own Δ, B, C and the model's A. */
async function attentionOf(model: LanguageModel, result: ForwardResult, tick: Tick): Promise<Map<number, Record<string, Tensor>>> {
  const out = new Map<number, Record<string, Tensor>>();
  const channels = channelsOf(model);
  for (const [k, l] of result.layers.entries()) {
    const { delta, B, C } = l.tensors;
    if (!delta || !B || !C) continue;
    const { A, groups } = layerDecay(model as LanguageModel<'float64'>, l.layer);
    const onProgress = (done: number) => tick(k * channels + done);
    out.set(l.layer, { hidden_attention: await hiddenAttentionAsync(delta, B, C, A, groups, { onProgress }) });
  }
  return out;
}


function checkPositions(positions: number[], length: number): number[] {
  const bad = positions.find((p) => p >= length || p < -length);
  if (bad !== undefined) throw new UsageError(`--states-at ${bad} is outside the ${length}-token sample`);
  return positions;
}


