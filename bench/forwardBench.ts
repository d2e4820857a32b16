/**
 * (b) The tfjs forward of a random-weight mamba-130m-shaped model on the CPU backends (wasm,
 * cpu), one layer's internals (and its last state) captured, logits for every token downloaded.
 * They are too slow for 24 layers on a few cores: they run `cpuLayers` layers. (WebGPU is the
 * native engine: nativeForwardBench.ts.)
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Mamba1Config } from '../src/engine/model/config';
import type { LoadedModel } from '../src/engine/model/graph';
import { createTfModel, tfjsForward } from '../src/engine/tfjs/forward';
import type { Row } from './report';
import { timeAsync } from './timing';

export interface ForwardBenchOptions {
  readonly tokens: number;
  readonly backends: readonly ('wasm' | 'cpu')[];
  /** Layers of the model that run. */
  readonly cpuLayers: number;
}

/** The first `layers` layers of `model`, same embedding and head. */
function truncated(model: LoadedModel<'float32'>, layers: number): LoadedModel<'float32'> {
  return { ...model, config: { ...(model.config as Mamba1Config), nLayer: layers }, layers: model.layers.slice(0, layers) };
}

export async function runForwardBench(model: LoadedModel<'float32'>, opts: ForwardBenchOptions, log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const V = (model.config as Mamba1Config).vocabSize;
  const ids = Int32Array.from({ length: opts.tokens }, (_, i) => (i * 7919 + 13) % V);
  const options = { layers: [0], statesAt: [-1] };
  const full = model.layers.length;
  for (const backend of opts.backends) {
    if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend '${backend}' did not start`);
    log(`forward: ${backend}, ${opts.cpuLayers} layers, ${opts.tokens} tokens`);
    const tfModel = createTfModel(truncated(model, opts.cpuLayers));
    // Warm-up on a short input: wasm start-up.
    await tfjsForward(tfModel, ids.subarray(0, 16), options);
    const t = await timeAsync(async () => void (await tfjsForward(tfModel, ids, options)), 1);
    rows.push({ section: 'forward', name: `tfjs forward, ${opts.cpuLayers} layers, layer 0 captured`, backend, shape: `${opts.tokens} tokens`, ms: t.ms, note: `1 run; ${opts.cpuLayers} of ${full} layers` });
    tfModel.dispose();
  }
  return rows;
}
