/**
 * The batched ablation sweep on the native WebGPU engine (src/engine/webgpu/sweep.ts), issue 16's
 * target: 512 tokens × 24 layers of the random-weight mamba-130m-shaped model in ≤ 60 s on the
 * H200. Timed end to end from JS (the plan built, the clean run, every cell, the map read back),
 * after a warm-up sweep that compiles the pipelines. Before it:
 *  - one plain forward of the same length (the cost of the naive sweep: a forward per cell);
 *  - three layers (first, middle, last) × every token with the clean logits in one block and in
 *    blocks of 64 rows, and the last layer alone (a cell's lm_head and reduction);
 *  - a spot check: four cells against the ordinary intervened forward (model.forward with the
 *    ablate-write edit, logits read back, KL and Δloss in float64 by interventionEffect).
 */
import { interventionEffect } from '../src/engine/analysis/effect';
import type { LanguageModel } from '../src/engine/model/graph';
import { WebGpuModel } from '../src/engine/webgpu/model';
import { webgpuAblationSweep } from '../src/engine/webgpu/sweep';
import type { Row } from './report';
import { timeAsync } from './timing';

export interface SweepBenchOptions {
  readonly tokens: number;
  /** Layers swept (default all). */
  readonly layers?: number;
}

export async function runSweepBench(device: GPUDevice, model: LanguageModel<'float32'>, opts: SweepBenchOptions, log: (s: string) => void): Promise<Row[]> {
  const L = opts.tokens;
  const nLayer = opts.layers ?? model.layers.length;
  const ids = Int32Array.from({ length: L }, (_, i) => (i * 7919 + 13) % model.config.vocabSize);
  const gpu = await WebGpuModel.upload(device, model, { software: false });
  const rows: Row[] = [];
  const shape = `${nLayer} layers × ${L} tokens`;
  try {
    log(`sweep: one forward of ${L} tokens (the naive sweep's cost per cell)`);
    for (let i = 0; i < 3; i++) await gpu.forward(ids, { layers: [], predictions: 1 });
    const forward = await timeAsync(async () => void (await gpu.forward(ids, { layers: [], predictions: 1 })), 20);
    rows.push({ section: 'sweep', name: 'one forward, top-1 to the host (a naive sweep runs one per cell)', backend: 'webgpu-native', shape: `${L} tokens`, ms: forward.ms, note: `naive sweep ≈ ${((forward.ms * nLayer * L) / 1000).toFixed(0)} s` });

    log('sweep: spot check of four cells against the intervened forward');
    const clean = await gpu.forward(ids, { layers: [] });
    const spots: [number, number][] = [[0, 0], [Math.floor(nLayer / 2), Math.floor(L / 3)], [nLayer - 1, L - 70], [nLayer - 1, L - 1]];
    let worst = 0;
    for (const [layer, s] of spots) {
      const cell = await webgpuAblationSweep(gpu, ids, { layers: [layer], tokens: [s] });
      const ablated = await gpu.forward(ids, { layers: [], edits: new Map([[layer, { scan: { noWrite: new Set([s]) } }]]) });
      const e = interventionEffect(clean.logits!, ablated.logits!, ids);
      const mean = (x: Float64Array, from: number) => (x.length > from ? x.subarray(from).reduce((a, b) => a + b, 0) / (x.length - from) : 0);
      const [kl, dLoss] = [mean(e.kl, s), mean(e.dLoss, s)];
      const rel = Math.max(Math.abs(cell.meanKl[0] - kl), Math.abs(cell.meanDLoss[0] - dLoss));
      log(`  layer ${layer} token ${s}: sweep KL ${cell.meanKl[0].toExponential(4)} Δloss ${cell.meanDLoss[0].toExponential(4)}; forward KL ${kl.toExponential(4)} Δloss ${dLoss.toExponential(4)}`);
      worst = Math.max(worst, rel);
    }
    rows.push({ section: 'sweep', name: 'spot check: four cells against the intervened forward, largest absolute difference of mean KL or Δloss', backend: 'webgpu-native', shape: `${L} tokens`, ms: 0, note: worst.toExponential(2) });

    const probeLayers = [0, Math.floor(nLayer / 2), nLayer - 1];
    // Clean logits in one block (the default: each cell one lm_head dispatch from its token on) against blocks of 64 rows (one per block after the cell's).
    for (const blockRows of [undefined, 64]) {
      const what = blockRows ? `clean logits in blocks of ${blockRows} rows` : 'clean logits in one block';
      log(`sweep: layers ${probeLayers.join(', ')} × ${L} tokens, ${what}`);
      await webgpuAblationSweep(gpu, ids, { layers: probeLayers, tokens: Array.from({ length: 32 }, (_, t) => t), blockRows });
      const t = await timeAsync(async () => void (await webgpuAblationSweep(gpu, ids, { layers: probeLayers, blockRows })), 1);
      rows.push({ section: 'sweep', name: `sweep of layers ${probeLayers.join(', ')}, ${what}`, backend: 'webgpu-native', shape: `3 layers × ${L} tokens`, ms: t.ms, note: `${(t.ms / (3 * L)).toFixed(2)} ms per cell` });
    }
    // Where a cell's time goes: the last layer alone is nearly all lm_head and reduction.
    log(`sweep: layer ${nLayer - 1} alone × ${L} tokens (a cell's lm_head and reduction, one layer)`);
    const head = await timeAsync(async () => void (await webgpuAblationSweep(gpu, ids, { layers: [nLayer - 1] })), 1);
    rows.push({ section: 'sweep', name: `sweep of layer ${nLayer - 1} alone: one layer, the lm_head from each token on, the reduction`, backend: 'webgpu-native', shape: `1 layer × ${L} tokens`, ms: head.ms, note: `${(head.ms / L).toFixed(2)} ms per cell` });

    log(`sweep: ${shape}, the default`);
    let last = 0;
    const t = await timeAsync(async () => {
      const map = await webgpuAblationSweep(gpu, ids, { layers: Array.from({ length: nLayer }, (_, i) => i), onProgress: (d) => {
        if (d - last >= 2048) log(`  ${(last = d)} cells`);
      } });
      const finite = map.meanKl.every(Number.isFinite) && map.meanDLoss.every(Number.isFinite);
      log(`  largest mean KL ${Math.max(...map.meanKl).toExponential(3)}; all finite: ${finite}`);
    }, 1);
    const cells = nLayer * L;
    rows.push({ section: 'sweep', name: 'ablation sweep (ablate-write, every token × every layer), end to end', backend: 'webgpu-native', shape, ms: t.ms, note: `${(t.ms / cells).toFixed(2)} ms per cell; target ≤ 60 s at 24 × 512` });
  } finally {
    gpu.dispose();
  }
  return rows;
}
