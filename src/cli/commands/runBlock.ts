/**
 * `run-block`: the design note's simplified block on an input x [L, d_model]; writes y (scan
 * output with D·x_in, before the gate), out (y ⊙ silu(res)), x_in, res, B, C and delta.
 */
import { InputError } from '../../engine/errors';
import { SafetensorsFile, type NamedTensor } from '../../engine/formats/safetensors';
import type { ForwardResult } from '../../engine/internals';
import { designNoteOutputs } from '../../engine/layers/seedBlock';
import type { LoadedModel } from '../../engine/model/graph';
import { loadSeedBlockFile } from '../../engine/model/load';
import { referenceLayers } from '../../engine/reference/forward';
import { createTfModel, tfjsLayers } from '../../engine/tfjs/forward';
import { NodeFileSource } from '../../node/files';
import { useNodeBackend } from '../../node/tfjsBackends';
import { oneOf, parseArgs, required } from '../args';
import type { Command } from '../command';
import { writeDump } from '../modelArgs';
import { forwardWork, MAX_SECONDS_OPTION, MAX_SECONDS_USAGE, maxSecondsOf, RATES, RunBudget } from '../runBudget';

const USAGE = `usage: mamba-scope run-block --block <block.safetensors> --input <io.safetensors> --out <out.safetensors>
                            [--precision fp64|fp32] [--max-seconds S]

Runs the simplified block (in_proj → [x_in, res]; x_proj → B, C, dt; dt_proj + softplus; scan;
y = scan + D·x_in; out = y ⊙ silu(res)) on the input file's "x" [L, d_model] and writes
y, out, x_in, res, B, C and delta. fp64 uses the float64 reference, fp32 the tfjs cpu backend.
${MAX_SECONDS_USAGE}`;

export const runBlock: Command = {
  name: 'run-block',
  summary: "run the design note's simplified block on an input tensor",
  usage: USAGE,
  async run(argv, io) {
    const args = parseArgs(argv, { block: { value: true }, input: { value: true }, out: { value: true }, precision: { value: true }, ...MAX_SECONDS_OPTION });
    const budget = new RunBudget('run-block', io, maxSecondsOf(args));
    const precision = oneOf(args, 'precision', ['fp64', 'fp32'] as const, 'fp64');
    const blockFile = await SafetensorsFile.open(await NodeFileSource.open(required(args, 'block')));
    const input = await SafetensorsFile.open(await NodeFileSource.open(required(args, 'input')));
    const xInfo = input.info('x');
    if (!xInfo) throw new InputError(input.name, 'has no tensor "x" (the block input [L, d_model])');
    const block = await loadSeedBlockFile(blockFile, precision === 'fp64' ? 'float64' : 'float32');
    checkInput(xInfo.shape, block, input.name);
    budget.plan([{ name: 'block', work: forwardWork(block, xInfo.shape[0]), rate: precision === 'fp64' ? RATES.reference : RATES.cpu }], 'use a shorter input');
    const { layers } = await budget.phase('block', 1, async (): Promise<ForwardResult> => {
      if (precision === 'fp64') return referenceLayers(block as LoadedModel<'float64'>, await input.readFloat('x', 'float64'));
      await useNodeBackend('cpu');
      const tfModel = createTfModel(block as LoadedModel<'float32'>);
      try {
        return await tfjsLayers(tfModel, await input.readFloat('x', 'float32'));
      } finally {
        tfModel.dispose();
      }
    });
    const entries: NamedTensor[] = Object.entries(designNoteOutputs(layers[0].tensors)).map(([name, tensor]) => ({ name, tensor }));
    await writeDump(required(args, 'out'), entries, { format: 'mamba-dump/1', layout: 'LD', model: 'seed-simple', dtype: precision === 'fp64' ? 'float64' : 'float32' });
    io.out(`block ${blockFile.name}: ${xInfo.shape[0]} tokens × ${xInfo.shape[1]} channels, ${precision} → ${required(args, 'out')}`);
    io.out(`time: ${budget.summary()}`);
    return 0;
  },
};

function checkInput(shape: readonly number[], block: LoadedModel, source: string): void {
  if (shape.length !== 2 || shape[1] !== block.config.dModel) {
    throw new InputError(source, `"x" has shape [${shape.join(', ')}] but the block expects [L, ${block.config.dModel}]`);
  }
}
