/**
 * A long sample in the panel on the native WebGPU engine (issue 13; Chromium's WebGPU on
 * SwiftShader here): mamba1-tiny over 3000 tokens of the long fixture's text, two chunks (2048,
 * 952) each carried in from the one before through the plan's carryIn (webview/long/chunkedLong.ts
 * webgpuChunkForward). The overview's loss and mean Δ at every position against the float64
 * reference over the whole sample, computed here in Node; then the window moved to token 2800,
 * [952, 3000), recomputed from the checkpoint at 0 (952 tokens carried into the window), whose
 * layer-1 Δ at full resolution is the reference's rows there (layer 1 reads layer 0's output, so it
 * holds only if both carries were right).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isLanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { nextTokenLoss } from '../../src/engine/predictions';
import { referenceForward } from '../../src/engine/reference/forward';
import { normalizedError } from '../../src/engine/tensor';
import { FULL_RESOLUTION_TOKENS, type ViewSettings } from '../../src/protocol';
import { NodeFolderStore } from '../../src/node/files';
import { loadModelParams, runParams, TINY_MODEL } from './messages';
import { Panel } from './panel';
import { ROOT } from './server';

const SETTINGS: ViewSettings = { backend: 'webgpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };
const TOKENS = 3000;

describe('a long sample on the native WebGPU engine in Chromium (mamba1-tiny, 3000 tokens)', function () {
  this.timeout(300_000);
  let panel: Panel;
  let ids: Int32Array;
  let ref: ReturnType<typeof referenceForward>;

  before(async () => {
    const { params, tokenizer } = await loadModelParams(TINY_MODEL, 'tiny');
    const text = readFileSync(join(ROOT, 'test', 'fixtures', 'long', 'text-32k.py'), 'utf8');
    const run = runParams('long-gpu', 'tiny', text, tokenizer, { backend: 'webgpu', memoryLimitMB: 1200 });
    ids = new Int32Array(run.ids).slice(0, TOKENS);
    const model = await loadModelFolder(new NodeFolderStore(TINY_MODEL), 'float64');
    assert.ok(isLanguageModel(model));
    ref = referenceForward(model, ids, { keep: ['delta'] });
    panel = await Panel.open();
    await panel.notify('setSettings', SETTINGS);
    await panel.request('loadModel', params);
    await panel.request('run', { ...run, ids: ids.slice().buffer, tokens: run.tokens.slice(0, TOKENS), offsets: run.offsets.slice(0, TOKENS) });
    await panel.waitForView('overview', 240_000);
  });

  after(async () => {
    await panel?.close();
  });


  it('runs on the native engine: the overview\'s loss and mean Δ at every position are the float64 reference\'s', async () => {
    const d = await panel.request('describe', null);
    assert.equal(d.engine, 'webgpu-native');
    assert.deepEqual(d.long, { tokens: TOKENS, window: [0, FULL_RESOLUTION_TOKENS], fullResolution: true });
    const { shape, data } = await panel.exportedNpy('overview');
    assert.deepEqual(shape, [TOKENS, 4]);
    const column = (k: number) => Float64Array.from({ length: TOKENS }, (_, t) => data[t * 4 + k]);
    const wantLoss = Float64Array.from({ length: TOKENS - 1 }, (_, t) => nextTokenLoss(ref.logits!, t, ids[t + 1]));
    const lossError = normalizedError(column(0).subarray(0, TOKENS - 1), wantLoss);
    assert.ok(lossError <= 1e-4, `loss: normalized error ${lossError}`);
    // The overview's mean Δ is the selected layer's (layer 0 at first; the window test below checks layer 1).
    const delta = ref.layers[d.selection!.layer].tensors.delta!;
    const D = delta.shape[1];
    const wantMean = Float64Array.from({ length: TOKENS }, (_, t) => delta.data.subarray(t * D, (t + 1) * D).reduce((s, v) => s + v, 0) / D);
    const meanError = normalizedError(column(1), wantMean);
    assert.ok(meanError <= 1e-4, `mean Δ: normalized error ${meanError}`);
    assert.deepEqual(panel.errors, []);
  });

  it('moves the window to token 2800 and shows layer 1\'s Δ there at full resolution, recomputed from the checkpoint', async () => {
    await panel.notify('selectToken', { runId: 'long-gpu', token: 2800, layer: 1 });
    await panel.page.waitForFunction(() => document.querySelector('.view-overview .view-title')?.textContent?.includes('window 952–2999 (full resolution)'), null, { timeout: 180_000 });
    await panel.waitForView('heatmap');
    const d = await panel.request('describe', null);
    assert.deepEqual([d.long?.window, d.selection?.layer], [[952, 3000], 1]);
    const { shape, data } = await panel.exportedNpy('heatmap');
    const delta = ref.layers[1].tensors.delta!;
    const D = delta.shape[1];
    assert.deepEqual(shape, [FULL_RESOLUTION_TOKENS, D]);
    const e = normalizedError(data, delta.data.subarray(952 * D, 3000 * D));
    assert.ok(e <= 1e-4, `layer 1: window Δ normalized error ${e}`);
    assert.deepEqual(panel.errors, []);
  });
});
