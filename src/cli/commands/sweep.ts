/**
 * `mamba-scope sweep`: each token's write ablated in each layer in turn, and the effect on the
 * outputs after it: a tokens × layers map written to a safetensors file, and the cells with the
 * largest effect printed. The float64 reference runs one forward per cell
 * (src/engine/analysis/sweep.ts); the native WebGPU engine its batched sweep
 * (src/engine/webgpu/sweep.ts), with the same map.
 */
import { ablationSweep, type AblationSweep } from '../../engine/analysis/sweep';
import { InputError } from '../../engine/errors';
import { scanOf } from '../../engine/layers/kind';
import { isLanguageModel, type LanguageModel } from '../../engine/model/graph';
import { WebGpuModel } from '../../engine/webgpu/model';
import { webgpuAblationSweep } from '../../engine/webgpu/sweep';
import { createDawnDevice } from '../../node/webgpu';
import { intList, layerList, oneOf, optional, parseArgs, required, UsageError } from '../args';
import type { Command } from '../command';
import { loadModelArg, readSample, writeDump } from '../modelArgs';
import { forwardWork, MAX_SECONDS_OPTION, MAX_SECONDS_USAGE, maxSecondsOf, RATES, RunBudget, type Tick } from '../runBudget';

const USAGE = `usage: mamba-scope sweep [--model <dir|file>] (--text <file> | --ids 1,2,3) --out <map.safetensors>
                        [--layers all|0,2] [--tokens 0,5,9] [--max-tokens N] [--max-seconds S]
                        [--backend reference|webgpu]

Ablates each token's write into the state (ablate-write, docs/INTERVENTIONS.md) in each layer in
turn and measures the outputs from that token on against the clean run. Writes sweep.mean_kl and
sweep.mean_dloss [layers, tokens] (mean KL of the next-token distributions, nats; mean change of
the next-token loss), sweep.layers and sweep.tokens, and prints the ten cells with the largest
effect.
  --backend  reference: one float64 forward per (layer, token) (default); webgpu: the native
             WebGPU engine in fp32 through Dawn (the GPU, or SwiftShader without one), the cells
             batched on the device, each from the clean stream entering its layer
${MAX_SECONDS_USAGE}`;

export const sweep: Command = {
  name: 'sweep',
  summary: 'ablate each token in each layer: the tokens × layers map of what the model uses',
  usage: USAGE,
  async run(argv, io) {
    const args = parseArgs(argv, {
      model: { value: true }, text: { value: true }, ids: { value: true }, out: { value: true }, layers: { value: true },
      tokens: { value: true }, 'max-tokens': { value: true }, backend: { value: true }, ...MAX_SECONDS_OPTION,
    });
    const out = required(args, 'out');
    const backend = oneOf(args, 'backend', ['reference', 'webgpu'] as const, 'reference');
    const budget = new RunBudget('sweep', io, maxSecondsOf(args));
    const { dir, model } = await loadModelArg(optional(args, 'model'), backend === 'webgpu' ? 'float32' : 'float64');
    if (!isLanguageModel(model)) throw new InputError(dir, 'is a simplified block, which takes hidden states: sweep runs language models');
    const { ids } = await readSample(args, dir, model.config.vocabSize, io.err);
    const layers = layerList(args, 'layers', model.config.nLayer);
    const tokens = intList(args, 'tokens') ?? Array.from({ length: ids.length }, (_, t) => t);
    const bad = tokens.find((t) => !Number.isInteger(t) || t < 0 || t >= ids.length);
    if (bad !== undefined) throw new UsageError(`--tokens ${bad} is outside the ${ids.length}-token sample`);
    // A layer without a scan has no write to ablate: refused in one line, not swept as a map of zeros.
    for (const l of layers) scanOf(model.layers[l]);
    const cells = layers.length * tokens.length;
    // On webgpu a cell runs from its layer and its token on: a whole forward per cell errs long.
    budget.plan([{ name: 'sweep', work: (cells + 1) * forwardWork(model, ids.length), rate: RATES[backend] }], 'sweep fewer --layers or --tokens, or use fewer tokens (--max-tokens)');
    const map = await budget.phase('sweep', cells, (tick) =>
      backend === 'webgpu' ? gpuSweep(model as LanguageModel<'float32'>, ids, layers, tokens, tick) : ablationSweep(model as LanguageModel<'float64'>, ids, { layers, tokens, onProgress: tick }));
    await writeDump(out, [
      { name: 'sweep.mean_kl', tensor: { shape: [layers.length, tokens.length], data: map.meanKl } },
      { name: 'sweep.mean_dloss', tensor: { shape: [layers.length, tokens.length], data: map.meanDLoss } },
      { name: 'sweep.layers', tensor: { shape: [layers.length], data: Int32Array.from(layers) } },
      { name: 'sweep.tokens', tensor: { shape: [tokens.length], data: Int32Array.from(tokens) } },
      { name: 'input_ids', tensor: { shape: [ids.length], data: ids } },
    ], { format: 'mamba-sweep/1', model: dir, intervention: 'ablate-write', backend, dtype: backend === 'webgpu' ? 'float32' : 'float64' });
    const ranked = [...map.meanKl.keys()].sort((a, b) => map.meanKl[b] - map.meanKl[a]).slice(0, 10);
    io.out(`swept     ${layers.length} layers × ${tokens.length} tokens (ablate-write), ${backend === 'webgpu' ? `${cells} cells batched on webgpu (fp32)` : `${cells} forwards`}`);
    for (const c of ranked) {
      const [l, t] = [layers[Math.floor(c / tokens.length)], tokens[c % tokens.length]];
      io.out(`layer ${String(l).padEnd(3)} token ${String(t).padEnd(6)} mean KL ${map.meanKl[c].toExponential(3)}  mean Δloss ${map.meanDLoss[c].toExponential(3)}`);
    }
    io.out(`wrote     ${out}`);
    io.out(`time      ${budget.summary()}`);
    return 0;
  },
};

/** The batched sweep on the native WebGPU engine through Dawn: its device made for the run and freed after. */
async function gpuSweep(model: LanguageModel<'float32'>, ids: Int32Array, layers: readonly number[], tokens: readonly number[], tick: Tick): Promise<AblationSweep> {
  const { device, info } = await createDawnDevice();
  try {
    const gpu = await WebGpuModel.upload(device, model, { software: info.software });
    try {
      return await webgpuAblationSweep(gpu, ids, { layers, tokens, onProgress: tick });
    } finally {
      gpu.dispose();
    }
  } finally {
    device.destroy();
  }
}
