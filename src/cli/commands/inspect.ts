/**
 * `inspect`: run a model on a text (or ids) and write every internal to a mamba-dump/1 file.
 * fp64 runs the float64 reference; fp32 runs the tfjs forward on cpu or wasm, or the native
 * WebGPU forward (Dawn) on webgpu.
 */
import { bucketMeans, trendText, type BucketMean } from '../../engine/analysis/positionBuckets';
import { hiddenAttentionAsync } from '../../engine/analysis/attention';
import { InputError, LimitError } from '../../engine/errors';
import { buildDump, DUMP_FORMAT } from '../../engine/formats/dump';
import { attentionPatternValues, keptValues, type ForwardOptions, type ForwardResult } from '../../engine/internals';
import { kindFor, layerKinds } from '../../engine/layers';
import { archName, GATED_NORMS, isLanguageModelConfig, stateSize, type LanguageModelConfig } from '../../engine/model/config';
import type { LanguageModel } from '../../engine/model/graph';
import type { Precision } from '../../engine/model/params';
import { loadModel, openModel, streamValues, weightValues, type StreamedModel } from '../../engine/model/load';
import { topK } from '../../engine/predictions';
import { describeIntervention, layerEdits, parseIntervention } from '../../engine/interventions';
import { editedModel, readInterventionInputs } from '../../engine/interventionInputs';
import { openTensorFile } from '../../engine/formats/tensorFile';
import { NodeFileSource } from '../../node/files';
import { referenceForward, referenceForwardStreamed } from '../../engine/reference/forward';
import { negExp } from '../../engine/reference/scan';
import { createTfModel, tfjsForward } from '../../engine/tfjs/forward';
import { mean, rowNorms, type Tensor } from '../../engine/tensor';
import { WebGpuModel } from '../../engine/webgpu/model';
import { storedFormat, WEIGHT_FORMATS, type WeightFormat } from '../../engine/webgpu/weightFormat';
import { useNodeBackend } from '../../node/tfjsBackends';
import { createDawnDevice } from '../../node/webgpu';
import { UsageError, flag, intList, layerList, list, oneOf, optional, parseArgs, positiveInt, required } from '../args';
import type { Command } from '../command';
import { checkLongRun, longRun, longRunEntries, LONG_CHUNK, parsePositions } from '../longRun';
import { loadTokenizer, openModelArg, readSample, writeDump } from '../modelArgs';
import { attentionWork, layerTicks, modelWork, MAX_SECONDS_OPTION, MAX_SECONDS_USAGE, maxSecondsOf, RATES, RunBudget, type Phase, type Tick } from '../runBudget';
import { scanOf } from '../../engine/layers/kind';

const USAGE = `usage: mamba-scope inspect [--model <dir|file>] (--text <file> | --ids 1,2,3) --out <dump.safetensors>
                          [--precision fp64|fp32] [--backend reference|cpu|wasm|webgpu]
                          [--layers all|0,2] [--states-at 0,57,-1] [--max-tokens N] [--attention]
                          [--max-memory MB] [--max-seconds S] [--gpu-weights f32|f16|bf16]
                          [--norm mamba_ssm|transformers] [--positions 0:32768:512,-1]
                          [--intervene "ablate-write layer=1 tokens=40" …] [--logit-lens]

Runs the model on the sample and writes a mamba-dump/1 file: input_ids, logits and, per layer,
hidden_in, z, u, delta, B, C, y, out, hidden_out (+ h and h_tokens with --states-at).
  --model       model folder (config.json, model.safetensors, tokenizer.json); default: the bundled model
  --precision   fp64 = float64 reference (default; backend "reference"), fp32 = the others
  --backend     for fp32: tfjs cpu (default) or wasm, or webgpu (the native WebGPU forward,
                through Dawn: the GPU, or SwiftShader on a machine without one)
  --states-at   token positions whose state h (and, on the reference, the conv context conv_state)
                is saved; negative counts from the end
  --max-tokens  keep only the first N tokens
  --attention   add layers.i.hidden_attention [L, L]: the implicit attention, mean over channels;
                a hybrid's attention layers add layers.i.attn_pattern [L, heads, L], their own
  --max-memory  the run's memory in MB (default 4096): weights, kept tensors and logits; when
                the weights do not fit, the float64 reference streams the layers from disk
  --positions   a long run in ${LONG_CHUNK}-token chunks (the float64 reference, or fp32 on cpu, wasm or webgpu),
                each layer's state carried, holding one chunk whatever the length; the dump gets positions,
                logits [P, V] at these positions (start:end[:step] or positions, comma-separated),
                nll [L-1] (the next-token loss everywhere) and each layer's final h and conv_state
  --intervene   an intervention, in the reference, on cpu/wasm or on webgpu (repeatable; docs/INTERVENTIONS.md):
                "ablate-write layer=L tokens=S[,…]", "scale-delta layer=L tokens=… factor=F [channels=…]",
                "zero-state layer=L token=T", "knockout layer=L from=S to=T0",
                "steer layer=L tokens=… vector=FILE:KEY scale=A", "patch-state layer=L token=T from=DUMP"
                (DUMP written with --states-at T), "ablate-path layer=L path=ssm|attention|mlp mode=zero|mean"
                (hybrids); the dump is an ordinary one:
                mamba-scope effect <clean> <intervened> measures what changed
  --logit-lens  each kept layer's output stream through the final norm and lm_head: per position
                layers.i.lens_ids and lens_probs (the top 5) and lens_next_prob, lens_next_rank
                (the token that follows), to read where in depth the prediction forms
  --norm        Mamba-2 with n_groups > 1: the gated RMSNorm per group as mamba_ssm computes it
                (default; the released checkpoints were trained so), or over all of d_inner as
                transformers 5.17 does; compare the two dumps with mamba-scope compare
  --gpu-weights with --backend webgpu: the projections and embedding in f32, f16 or bf16 (half
                the GPU memory); default: the checkpoint's own format when it is f16 or bf16 (its
                exact values), else f32 (16 bits would round them: outside mamba_ssm's fp32
                tolerance on some models, docs/PERFORMANCE.md)
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
      'max-memory': { value: true }, 'gpu-weights': { value: true }, norm: { value: true }, positions: { value: true }, intervene: { value: true, repeat: true }, 'logit-lens': { value: false }, ...MAX_SECONDS_OPTION,
    });
    const out = required(args, 'out');
    const textFile = optional(args, 'text');
    const precision = oneOf(args, 'precision', ['fp64', 'fp32'] as const, optional(args, 'backend') && optional(args, 'backend') !== 'reference' ? 'fp32' : 'fp64');
    const backend = oneOf<Backend>(args, 'backend', ['reference', 'cpu', 'wasm', 'webgpu'], precision === 'fp64' ? 'reference' : 'cpu');
    if ((precision === 'fp64') !== (backend === 'reference')) throw new UsageError('fp64 runs on the reference backend only; fp32 on cpu, wasm or webgpu');
    const gpuWeightsArg = optional(args, 'gpu-weights') === undefined ? undefined : oneOf(args, 'gpu-weights', WEIGHT_FORMATS, 'f32');
    if (gpuWeightsArg !== undefined && backend !== 'webgpu') throw new UsageError('--gpu-weights applies to --backend webgpu only');
    const statesAt = intList(args, 'states-at') ?? [];
    const attention = flag(args, 'attention');
    const budget = new RunBudget('inspect', io, maxSecondsOf(args));

    const norm = oneOf(args, 'norm', GATED_NORMS, 'mamba_ssm');
    const { dir, config, store } = await openModelArg(optional(args, 'model'), norm);
    const gpuWeights = gpuWeightsArg ?? storedFormat(store);
    if (!isLanguageModelConfig(config)) throw new InputError(dir, 'is a simplified block, which takes hidden states: use run-block');
    const { ids, pieces } = await readSample(args, dir, config.vocabSize, io.err);
    const positionSpec = optional(args, 'positions');
    if (positionSpec !== undefined) {
      if (attention || statesAt.length || optional(args, 'layers') !== undefined) throw new UsageError('--positions writes each layer\'s final state and no per-token internals: leave out --attention, --states-at and --layers');
      if (list(args, 'intervene').length) throw new UsageError('--intervene runs on a whole sequence, not the chunked long mode: leave out --positions');
      const positions = parsePositions(positionSpec, ids.length);
      const floats = precision === 'fp64' ? 'float64' : 'float32';
      checkLongRun(config, ids.length, positions.length, positiveInt(args, 'max-memory') ?? 4096, floats);
      budget.plan(plan(config, backend, ids.length, 0, false), 'use fewer tokens (--max-tokens)');
      const run = await budget.phase('forward', ids.length, (tick) => longRunOn(backend, config, store, ids, positions, tick, gpuWeights));
      const metadata = { format: DUMP_FORMAT, layout: 'LD', model: dir, arch: archName(config), dtype: floats, backend, mode: 'long', ...(config.arch === 'mamba2' ? { gated_norm: norm } : {}) };
      await writeDump(out, longRunEntries(ids, run, kindFor(config).internals.h ?? []), metadata);
      const meanLoss = run.nll.reduce((a, b) => a + b, 0) / Math.max(1, run.nll.length);
      io.out(`model     ${dir} (${archName(config)}, ${config.nLayer} layers, d_model ${config.dModel})`);
      io.out(`tokens    ${ids.length}${textFile ? ` from ${textFile}` : ''}, in ${LONG_CHUNK}-token chunks`);
      io.out(`loss      ${meanLoss.toFixed(4)} nats/token (mean over ${run.nll.length} positions)`);
      const byPosition = bucketMeans(run.nll);
      if (byPosition.length > 1) io.out(`          ${describeLossByPosition(byPosition)}`);
      io.out(`logits    at ${run.positions.length} positions`);
      io.out(`wrote     ${out}`);
      io.out(`time      ${budget.summary()}`);
      return 0;
    }
    const interventions = list(args, 'intervene').map(parseIntervention);
    const layers = layerList(args, 'layers', config.nLayer);
    const residence = memoryPlan(config, { tokens: ids.length, layers: layers.length, states: statesAt.length, attention, precision, backend }, positiveInt(args, 'max-memory') ?? 4096);
    // --attention: Mamba layers get their implicit attention after the forward, attention layers their own pattern from it.
    const options: ForwardOptions = { layers, statesAt: checkPositions(statesAt, ids.length), attentionPattern: attention };

    const lens = flag(args, 'logit-lens');
    budget.plan(plan(config, backend, ids.length, layers.length, attention, lens), 'use fewer tokens (--max-tokens)' + (attention || lens ? ' or fewer layers (--layers)' : ''));

    if (interventions.length && residence === 'streamed') throw new LimitError('inspect', 'the weights do not fit --max-memory resident, and interventions run on a resident model: raise --max-memory');
    const edits = layerEdits(interventions, ids.length, editedModel(config), await readInterventionInputs(interventions, ids.length, config, openTensorPath));
    const floats = precision === 'fp64' ? 'float64' : 'float32';
    const model = residence === 'streamed' ? await openModel(config, store, floats) : await loadModel(config, store, floats);
    if (residence === 'streamed') {
      const where = backend === 'webgpu' ? ', into GPU memory' : '';
      io.err(`note: the weights (${mb(weightValues(config).total * (precision === 'fp64' ? 8 : 4))} MB in ${floats}) do not fit ${backend === 'wasm' ? '--max-memory or the wasm heap' : '--max-memory'}: the layers are read from the checkpoint one at a time${where}`);
    }
    // The logit lens is the engine's (ForwardOptions.logitLens): the top 5 per layer and position; buildDump writes it.
    const result = await budget.phase('forward', config.nLayer, (tick) =>
      forward(model, backend, ids, { ...options, ...(edits.size ? { edits } : {}), ...(lens ? { logitLens: LENS_TOP } : {}), checkCancelled: layerTicks(tick) }, gpuWeights));
    if (lens && result.layers.some((l) => !l.lens)) throw new UsageError(`--logit-lens: the ${backend} engine does not compute the logit lens: leave out --backend for the float64 reference's`);
    const extras = attention ? await budget.phase('attention', result.layers.length * channelsOf(config), (tick) => attentionOf(model, result, tick)) : undefined;
    const { entries, metadata } = buildDump({
      inputIds: ids,
      pieces,
      result,
      extras,
      metadata: {
        model: dir, arch: archName(config), dtype: precision === 'fp64' ? 'float64' : 'float32', backend, weights: residence,
        ...(config.arch === 'mamba2' ? { gated_norm: norm } : {}),
        ...(interventions.length ? { interventions: JSON.stringify(interventions.map(describeIntervention)) } : {}),
      },
    });
    await writeDump(out, entries, metadata);

    io.out(`model     ${dir} (${archName(config)}, ${config.nLayer} layers, d_model ${config.dModel}${residence === 'streamed' ? ', layers streamed from disk' : ''})`);
    io.out(`tokens    ${ids.length}${textFile ? ` from ${textFile}` : ''}`);
    io.out(`backend   ${backend} (${precision}${backend === 'webgpu' ? `, ${gpuWeights} weights` : ''})`);
    for (const i of interventions) io.out(`intervene ${describeIntervention(i)}`);
    const kinds = layerKinds(config);
    for (const l of result.layers) io.out(`layer ${String(l.layer).padEnd(3)} ${layerLine(kinds[l.layer].label, l.tensors)}`);
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

async function forward(model: LanguageModel | StreamedModel<'float64' | 'float32'>, backend: Backend, ids: Int32Array, options: ForwardOptions, gpuWeights: WeightFormat): Promise<ForwardResult> {
  if (backend === 'reference') return 'layers' in model ? referenceForward(model as LanguageModel<'float64'>, ids, options) : referenceForwardStreamed(model as StreamedModel<'float64'>, ids, options);
  if (backend === 'webgpu') return nativeForward(model as LanguageModel<'float32'> | StreamedModel<'float32'>, ids, options, gpuWeights);
  await useNodeBackend(backend);
  const tfModel = createTfModel(model as LanguageModel<'float32'> | StreamedModel<'float32'>);
  try {
    return await tfjsForward(tfModel, ids, options);
  } finally {
    tfModel.dispose();
  }
}

/** The long run on the reference, on a tfjs backend or on WebGPU through Dawn (its weights uploaded for the run and freed after). */
async function longRunOn(backend: Backend, config: LanguageModelConfig, store: Parameters<typeof loadModel>[1], ids: Int32Array, positions: number[], tick: Tick, gpuWeights: WeightFormat) {
  if (backend === 'reference') return longRun(await loadModel(config, store, 'float64'), config, ids, positions, () => undefined, tick);
  if (backend === 'webgpu') {
    const { device, info } = await createDawnDevice();
    try {
      const gpu = await WebGpuModel.upload(device, await loadModel(config, store, 'float32'), { software: info.software, weights: gpuWeights });
      return await longRun(gpu, config, ids, positions, () => undefined, tick);
    } finally {
      device.destroy();
    }
  }
  await useNodeBackend(backend);
  const tfModel = createTfModel(await loadModel(config, store, 'float32'));
  try {
    return await longRun(tfModel, config, ids, positions, () => undefined, tick);
  } finally {
    tfModel.dispose();
  }
}

/** A tensor file from disk, for what the interventions read (steering vectors, patch-state's dumps). */
async function openTensorPath(path: string) {
  return openTensorFile(await NodeFileSource.open(path));
}

/** The native WebGPU forward through Dawn: the GPU if the machine has one, else SwiftShader. */
async function nativeForward(model: LanguageModel<'float32'> | StreamedModel<'float32'>, ids: Int32Array, options: ForwardOptions, weights: WeightFormat): Promise<ForwardResult> {
  const { device, info } = await createDawnDevice();
  try {
    const gpu = await WebGpuModel.upload(device, model, { software: info.software, weights });
    return await gpu.forward(ids, options);
  } finally {
    device.destroy();
  }
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(0);

interface RunShape {
  readonly tokens: number;
  readonly layers: number;
  readonly states: number;
  readonly attention: boolean;
  readonly precision: 'fp64' | 'fp32';
  readonly backend: Backend;
}

/**
 * The wasm backend's heap: 32-bit addresses, 4 GiB, less what the module and XNNPACK keep for
 * themselves. Weights past it abort the module ("Aborted()"), so a run is planned against it.
 */
const WASM_HEAP_BYTES = 3.5 * 2 ** 30;

/**
 * Where the weights live for this run, decided before any is read: resident when the weights,
 * the kept tensors (internals, [L, L] attention, logits) and the stream fit --max-memory (and,
 * on wasm, its heap); streamed layer by layer from the checkpoint when only the backbone and one
 * layer do (the float64 reference and tfjs read each layer as the forward reaches it; the native
 * WebGPU engine reads them one at a time into GPU memory, which holds them all); otherwise
 * refused with the numbers and the way out.
 */
function memoryPlan(config: LanguageModelConfig, run: RunShape, limitMb: number): 'resident' | 'streamed' {
  const bytes = run.precision === 'fp64' ? 8 : 4;
  const L = run.tokens;
  const patterns = run.attention ? run.layers * L * L + attentionPatternValues(config, L) : 0;
  const kept = (keptValues(config, { tokens: L, layers: run.layers, states: run.states }) + patterns + L * config.vocabSize) * bytes;
  const stream = streamValues(config, L) * bytes;
  const w = weightValues(config);
  const limit = limitMb * 1e6;
  // On wasm the weights and the stream sit in the heap; what is kept is downloaded out of it.
  const heap = (weights: number) => run.backend !== 'wasm' || weights * bytes + stream <= WASM_HEAP_BYTES;
  if (w.total * bytes + kept + stream <= limit && heap(w.total)) return 'resident';
  const streamed = (w.backbone + w.layer) * bytes + kept + stream;
  const keptNote = `kept tensors ${mb(kept)} MB (${run.layers} layers' internals for ${L} tokens${run.attention ? ', their attention' : ''}, the logits)`;
  if (streamed <= limit && heap(w.backbone + w.layer)) return 'streamed';
  throw new LimitError('inspect', `even streaming the layers from disk, the backbone and one layer take ${mb((w.backbone + w.layer) * bytes)} MB and ${keptNote}: ${mb(streamed)} MB, over ${streamed <= limit ? `the wasm heap's ${mb(WASM_HEAP_BYTES)} MB` : `the --max-memory limit of ${limitMb} MB`}: keep fewer layers (--layers), fewer tokens (--max-tokens), or raise --max-memory`);
}

/** The forward over every layer (with the logit lens, every kept layer's stream through the lm_head too), then the implicit attention of the kept layers (its cost grows with L²). */
function plan(config: LanguageModelConfig, backend: Backend, L: number, keptLayers: number, attention: boolean, lens = false): Phase[] {
  const lensWork = lens ? keptLayers * L * config.vocabSize * config.dModel : 0;
  const phases: Phase[] = [{ name: 'forward', work: modelWork(weightValues(config).total, stateValues(config), L) + lensWork, rate: RATES[backend] }];
  if (attention) phases.push({ name: 'attention', work: keptLayers * attentionWork(channelsOf(config), L, stateSize(config)), rate: RATES.attention });
  return phases;
}

/** The logit lens's top k per layer and position. */
const LENS_TOP = 5;

/**
 * One layer's line: its kind, its mean Δ when it has a scan, and on a hybrid each path's output
 * norm, the mean over tokens (before the family's multipliers): where the layer's work is done.
 */
function layerLine(label: string, t: ForwardResult['layers'][number]['tensors']): string {
  const parts = [label.padEnd(20)];
  if (t.delta) parts.push(`mean Δ ${mean(t.delta.data).toPrecision(4)}`);
  const paths = ([['ssm', t.ssm_out], ['attention', t.attn_out], ['mlp', t.mlp_out]] as const).filter(([, x]) => x);
  if (paths.length) parts.push(`‖out‖ ${paths.map(([name, x]) => `${name} ${mean(rowNorms(x!)).toPrecision(3)}`).join(', ')}`);
  return parts.join('  ');
}

/** Channels of the implicit attention: the columns of Δ (Mamba-1's D channels, Mamba-2's heads; a hybrid's widest Mamba layer's). */
function channelsOf(config: LanguageModelConfig): number {
  return Math.max(0, ...layerKinds(config).map((k) => k.internals.delta?.[0] ?? 0));
}

/** Values of every layer's state h, summed (a hybrid's attention and MLP layers have none). */
function stateValues(config: LanguageModelConfig): number {
  return layerKinds(config).reduce((sum, k) => sum + (k.internals.h ?? [0]).reduce((a, b) => a * b, 1), 0);
}

/** The implicit attention of every kept layer, from its own Δ, B, C and the model's A. */
async function attentionOf(model: LanguageModel | StreamedModel<Precision>, result: ForwardResult, tick: Tick): Promise<Map<number, Record<string, Tensor>>> {
  const out = new Map<number, Record<string, Tensor>>();
  const channels = channelsOf(model.config);
  for (const [k, l] of result.layers.entries()) {
    const { delta, B, C } = l.tensors;
    if (!delta || !B || !C) continue;
    // A streamed model holds no layer: its A is read from the checkpoint again.
    const layer = 'layers' in model ? model.layers[l.layer] : await model.layer(l.layer);
    const { aLog, groups } = scanOf(layer);
    const A = negExp(aLog);
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

/** "per 512 tokens 3.2104 at 0 → 2.8731 at 32256 (lowest 2.5012 at 4096, highest 3.2104 at 0; 64 buckets)". */
export function describeLossByPosition(buckets: readonly BucketMean[]): string {
  return `per ${buckets[0].tokens} tokens ${trendText(buckets.map((b) => ({ start: b.start, value: b.mean })), (v) => v.toFixed(4))}`;
}
