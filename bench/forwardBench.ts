/**
 * (b) The whole forward of a random-weight mamba-130m-shaped model at 1024 tokens, one layer's
 * internals (and its last state) captured, logits for every token downloaded: webgpu vs wasm vs
 * cpu. The pure-JS backends are too slow for 24 layers on a few cores: they run fewer layers,
 * and so does a webgpu run of the same depth, for a like-for-like row.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Mamba1Config } from '../src/engine/model/config';
import type { LoadedModel } from '../src/engine/model/graph';
import { webgpuConvSilu } from '../src/engine/kernels/convSilu';
import { webgpuScan } from '../src/engine/kernels/scan';
import { createTfModel, tfjsForward } from '../src/engine/tfjs/forward';
import type { TfScanInputs } from '../src/engine/tfjs/scan';
import type { Row } from './report';
import { scanBytes } from './scanBench';
import { gpuKernelMs, median, settle, timeAsync, timeTensorCall } from './timing';

export interface ForwardBenchOptions {
  readonly tokens: number;
  readonly backends: readonly string[];
  /** Layers for the cpu and wasm backends (and the like-for-like webgpu row). */
  readonly cpuLayers: number;
  readonly reps: number;
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
  const full = model.config.arch === 'mamba1' ? model.config.nLayer : 0;

  if (opts.backends.includes('webgpu') && model.config.arch === 'mamba1') {
    if (!(await tf.setBackend('webgpu'))) throw new Error("tfjs backend 'webgpu' did not start");
    log('forward: its kernels one by one');
    rows.push(...(await forwardKernels(model.config, opts.tokens)));
  }
  for (const backend of opts.backends) {
    if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend '${backend}' did not start`);
    const depths = backend === 'webgpu' ? [...new Set([full, opts.cpuLayers])] : [opts.cpuLayers];
    for (const layers of depths) {
      log(`forward: ${backend}, ${layers} layers, ${opts.tokens} tokens`);
      const tfModel = createTfModel(layers === full ? model : truncated(model, layers));
      // Warm-up: shader compilation / wasm start-up; a short input on the slow backends.
      await tfjsForward(tfModel, backend === 'webgpu' ? ids : ids.subarray(0, 16), options);
      const reps = backend === 'webgpu' ? opts.reps : 1;
      const t = await timeAsync(async () => void (await tfjsForward(tfModel, ids, options)), reps);
      const note = `${reps} run${reps > 1 ? 's' : ''}${layers < full ? `; ${layers} of ${full} layers` : ''}`;
      rows.push({ section: 'forward', name: `tfjs forward, ${layers} layers, layer 0 captured`, backend, shape: `${opts.tokens} tokens`, ms: t.ms, note });
      if (backend === 'webgpu' && layers === full) {
        // The same without the [L, V] logits download (top-10 on the device), and as the panel
        // runs it: every layer's z, u, Δ, B, C downloaded for the views.
        for (const [name, o] of [
          ['layer 0 captured, top-10 predictions on the device', { ...options, predictions: 10 }],
          ['as the panel runs it: every layer’s z, u, Δ, B, C and top-10 predictions', { keep: ['z', 'u', 'delta', 'B', 'C'] as const, predictions: 10 }],
        ] as const) {
          await tfjsForward(tfModel, ids, o);
          const v = await timeAsync(async () => void (await tfjsForward(tfModel, ids, o)), reps);
          rows.push({ section: 'forward', name: `tfjs forward, ${layers} layers, ${name}`, backend, shape: `${opts.tokens} tokens`, ms: v.ms, note });
        }
      }
      tfModel.dispose();
    }
  }
  return rows;
}

/**
 * The forward's heavy kernels one by one at its shapes, on the GPU clock (timestamp queries):
 * time per call, calls per forward, and bandwidth against the bytes each must move (inputs,
 * weights and output once). tf.profile's per-kernel times are not usable on webgpu (every kernel
 * gets its own timer round trip), hence standalone runs.
 */
async function forwardKernels(c: Mamba1Config, L: number): Promise<Row[]> {
  const H = c.dModel, D = c.dInner, N = c.dState, R = c.dtRank;
  const rows: Row[] = [];
  const add = async (name: string, perForward: number, bytes: number, flops: number, call: () => tf.Tensor[]) => {
    const t = await timeTensorCall(call);
    const gpu = (await gpuKernelMs(call)) ?? t.ms;
    rows.push({
      section: 'forward kernels', name, backend: 'webgpu', shape: `×${perForward} per forward`, ms: t.ms, gpuMs: gpu, gbps: bytes / (gpu * 1e-3) / 1e9,
      note: `${flops ? `${(flops / (gpu * 1e-3) / 1e12).toFixed(2)} TFLOP/s; ` : ''}${((gpu * perForward)).toFixed(2)} ms per forward`,
    });
  };
  const matmul = async (name: string, perForward: number, rowsIn: number, inDim: number, outDim: number) => {
    const x = tf.randomUniform([rowsIn, inDim]) as tf.Tensor2D;
    const w = tf.randomUniform([outDim, inDim]) as tf.Tensor2D;
    await add(`${name}: [${rowsIn}, ${inDim}] · [${outDim}, ${inDim}]ᵀ`, perForward, 4 * (rowsIn * inDim + outDim * inDim + rowsIn * outDim), 2 * rowsIn * inDim * outDim, () => [tf.matMul(x, w, false, true)]);
    tf.dispose([x, w]);
  };
  await matmul('in_proj', c.nLayer, L, H, 2 * D);
  await matmul('x_proj', c.nLayer, L, D, R + 2 * N);
  await matmul('dt_proj', c.nLayer, L, R, D);
  await matmul('out_proj', c.nLayer, L, D, H);
  await matmul('lm_head', 1, L, H, c.vocabSize);
  const r = (shape: number[], lo: number, hi: number) => tf.randomUniform(shape, lo, hi);
  const scanIn = { u: r([L, D], -1, 1), delta: r([L, D], 1e-3, 0.1), A: r([D, N], -16, -1), B: r([L, N], -1, 1), C: r([L, N], -1, 1), D: r([D], 0, 1), z: r([L, D], -1, 1), statesAt: new Int32Array() } as unknown as TfScanInputs;
  await add(`WGSL scan (default chunking), L ${L}`, c.nLayer, scanBytes(L, D, N), 0, () => {
    const o = webgpuScan(scanIn);
    return [o.y, o.gated!];
  });
  const logits = r([L, c.vocabSize], -1, 1);
  const downloadMs: number[] = [];
  // A fresh GPU tensor each time: tfjs keeps a downloaded tensor's values on the CPU side.
  const download = await timeAsync(async () => {
    const fresh = tf.mul(logits, 1);
    await settle(fresh);
    const t0 = performance.now();
    await fresh.data();
    downloadMs.push(performance.now() - t0);
    fresh.dispose();
  }, 3);
  const ms = median(downloadMs);
  rows.push({
    section: 'forward kernels', name: `download the logits [${L}, ${c.vocabSize}] to JS`, backend: 'webgpu', shape: '×1 per forward', ms,
    gbps: (4 * L * c.vocabSize) / (ms * 1e-3) / 1e9, note: `GPU → staging buffer → mapAsync → Float32Array (with the product: ${download.ms.toFixed(1)} ms)`,
  });
  logits.dispose();
  const w = r([D, c.dConv], -0.5, 0.5) as tf.Tensor2D;
  await add(`WGSL conv1d + SiLU, L ${L} (where the forward uses it)`, c.nLayer, 4 * 2 * L * D, 0, () => [webgpuConvSilu(scanIn.u, w)]);
  tf.dispose([w, ...Object.values(scanIn).filter((v): v is tf.Tensor => v instanceof tf.Tensor)]);
  return rows;
}
