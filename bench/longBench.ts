/**
 * The long run on the native WebGPU engine (issue 13's target: the mamba-130m shape at 32,768
 * tokens in ≤ 0.5 s on the H200, CLI): `inspect --positions` runs it as webgpuLongRun, 2048-token
 * chunks (LONG_CHUNK), each layer's h and conv context carried on the GPU between chunks, every
 * chunk submitted without waiting. Timed end to end from JS after a warm-up run that builds the
 * chunk plans (the model keeps them) and compiles the pipelines; the loss at every position and the logits at every
 * 512th position come back. Beside it, one chunk's plain forward (a chunk's share of the time),
 * and the panel's window at full resolution (issue 13: a 2048-token window of a mamba-130m run in
 * < 1 s on WebGPU): what windowFromCheckpoint (webview/long/chunkedLong.ts) runs at worst, 2047
 * tokens from the checkpoint before the window keeping only the carry, then the window's 2048
 * tokens keeping every layer's z, u, Δ, B and C, read back to the host.
 */
import type { LanguageModel } from '../src/engine/model/graph';
import { LONG_CHUNK } from '../src/cli/longRun';
import type { InternalName } from '../src/engine/internals';
import { carriesOf } from '../src/engine/layers/kind';
import { webgpuLongRun } from '../src/engine/webgpu/longRun';
import { WebGpuModel } from '../src/engine/webgpu/model';
import type { Row } from './report';
import { timeAsync } from './timing';

export async function runLongBench(device: GPUDevice, model: LanguageModel<'float32'>, tokens: number, log: (s: string) => void): Promise<Row[]> {
  const V = model.config.vocabSize;
  const ids = Int32Array.from({ length: tokens }, (_, i) => (i * 7919 + 13) % V);
  const positions = Array.from({ length: Math.ceil(tokens / 512) }, (_, i) => i * 512);
  const gpu = await WebGpuModel.upload(device, model, { software: false });
  const rows: Row[] = [];
  try {
    const chunk = ids.subarray(0, Math.min(tokens, LONG_CHUNK));
    for (let i = 0; i < 3; i++) await gpu.forward(chunk, { layers: [], predictions: 1 });
    const one = await timeAsync(async () => void (await gpu.forward(chunk, { layers: [], predictions: 1 })), 10);
    rows.push({ section: 'long', name: `one ${chunk.length}-token forward, top-1 to the host`, backend: 'webgpu-native', shape: `${chunk.length} tokens`, ms: one.ms });
    if (tokens >= 3 * LONG_CHUNK) rows.push(await windowRow(gpu, ids, model.layers.length, log));
    const run = () => webgpuLongRun(gpu, ids, { chunkLength: LONG_CHUNK, logitsAt: positions });
    log(`long: warm-up run of ${tokens} tokens in ${LONG_CHUNK}-token chunks`);
    const t0 = performance.now();
    const first = { ...(await run()), ms: performance.now() - t0 };
    // The loss is the top-1 kernel's log-probability: finite even where the random weights' spread logits underflow fp32's exp.
    const nonFinite = first.nll.filter((x) => !Number.isFinite(x)).length;
    const meanLoss = first.nll.reduce((a, b) => a + b, 0) / first.nll.length;
    // Seven runs: the first few after the warm-up vary by ±10 % on the H200 (clocks settling), the median of seven does not.
    const t = await timeAsync(async () => void (await run()), 7);
    log(`long: ${tokens} tokens in ${t.ms.toFixed(0)} ms (runs ${t.runs.map((r) => r.toFixed(0)).join(', ')})`);
    rows.push({
      section: 'long', name: `chunked forward (inspect --positions): loss at every position, logits at ${positions.length}, final states`, backend: 'webgpu-native', shape: `${model.layers.length} layers × ${tokens} tokens`, ms: t.ms,
      note: `${((t.ms * 1000) / tokens).toFixed(1)} µs/token; mean loss ${meanLoss.toFixed(1)} nats over ${first.nll.length} positions, ${nonFinite} non-finite; the first run (its plans built) ${first.ms.toFixed(0)} ms`,
    });
  } finally {
    gpu.dispose();
  }
  return rows;
}

/** The window internals the panel's views draw on a Mamba layer (its PANEL_INTERNALS without the states: none are asked in a window). */
const WINDOW_INTERNALS: readonly InternalName[] = ['z', 'u', 'delta', 'B', 'C'];

async function windowRow(gpu: WebGpuModel, ids: Int32Array, layerCount: number, log: (s: string) => void): Promise<Row> {
  const layers = Array.from({ length: layerCount }, (_, i) => i);
  // The checkpoint at LONG_CHUNK (the first chunk's carry); the window starts one token before the next checkpoint, the farthest a window can be from the one before it.
  const checkpoint = carriesOf(await gpu.forward(ids.subarray(0, LONG_CHUNK), { statesAt: [-1], keep: ['h', 'conv_state'], predictions: 1 }));
  const w0 = 2 * LONG_CHUNK - 1;
  let bytes = 0;
  const window = async () => {
    const lead = await gpu.forward(ids.subarray(LONG_CHUNK, w0), { statesAt: [-1], keep: ['h', 'conv_state'], predictions: 1 }, checkpoint);
    const r = await gpu.forward(ids.subarray(w0, w0 + LONG_CHUNK), { layers, keep: WINDOW_INTERNALS, predictions: 1 }, carriesOf(lead));
    bytes = r.layers.reduce((a, l) => a + Object.values(l.tensors).reduce((b, t) => b + (t?.data.byteLength ?? 0), 0), 0);
  };
  await window();
  const t = await timeAsync(window, 5);
  log(`long: a ${LONG_CHUNK}-token window at full resolution in ${t.ms.toFixed(0)} ms (${(bytes / 2 ** 20).toFixed(0)} MiB read back)`);
  return {
    section: 'long', name: `window at full resolution: ${w0 - LONG_CHUNK} tokens from the checkpoint, then ${LONG_CHUNK} keeping z, u, Δ, B, C of every layer`, backend: 'webgpu-native', shape: `${layerCount} layers × ${LONG_CHUNK} tokens`, ms: t.ms,
    note: `${(bytes / 2 ** 20).toFixed(0)} MiB of internals read back`,
  };
}
