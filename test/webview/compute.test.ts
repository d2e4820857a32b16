/**
 * The panel's compute session in Chromium: once uploaded, the weights live only in the tfjs
 * backend, so a backend switch moves them there from the old backend (no second loadModel from
 * the host) and the results stay the same; and a run over mambaScope.runMemoryLimitMB is refused
 * before any work, naming the setting, while the panel keeps showing the last run.
 */
import assert from 'node:assert/strict';
import type { ViewSettings } from '../../src/protocol';
import { loadModelParams, runParams, streamedModelParams, TINY_MODEL } from './messages';
import { Panel } from './panel';

const SETTINGS: ViewSettings = { backend: 'cpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };
const TEXT = 'def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n';

describe('compute session in Chromium', function () {
  let panel: Panel;

  before(async () => {
    panel = await Panel.open({ withoutWebGpu: true });
  });

  after(async () => {
    await panel?.close();
  });

  it('moves the weights to the new backend on a switch, with the same results and no new loadModel', async () => {
    await panel.notify('setSettings', SETTINGS);
    const { params, tokenizer } = await loadModelParams(TINY_MODEL, 'tiny');
    await panel.request('loadModel', params);
    const onCpu = await panel.request('run', runParams('run-cpu', 'tiny', TEXT, tokenizer, { backend: 'cpu', memoryLimitMB: 1200 }));
    assert.equal(onCpu.backend.backend, 'cpu');

    await panel.notify('setSettings', { ...SETTINGS, backend: 'wasm', wasmPath: panel.server.wasmPath });
    const onWasm = await panel.request('run', runParams('run-wasm', 'tiny', TEXT, tokenizer, { backend: 'wasm', memoryLimitMB: 1200 }));
    assert.equal(onWasm.backend.backend, 'wasm');
    const a = onCpu.perToken.delta!.values, b = onWasm.perToken.delta!.values;
    assert.equal(a.length, b.length);
    assert.ok(a.every((v, i) => Math.abs(v - b[i]) <= 1e-5 * Math.max(1, Math.abs(v))), 'per-token Δ on wasm equals cpu');
    assert.deepEqual(onWasm.next!.ids.values, onCpu.next!.ids.values);
    assert.deepEqual(await panel.notifications('modelReleased'), []);
    assert.deepEqual(panel.errors, []);
  });

  it('keeps as many layers as fit mambaScope.runMemoryLimitMB and says which; refuses before any work when not one fits, keeping the last run on screen', async () => {
    const { tokenizer } = await loadModelParams(TINY_MODEL, 'tiny');
    // TEXT × 8 is 192 tokens: z, u, Δ (3 × 256 wide) and B, C (2 × 16) keep 0.61 MB per layer.
    const half = await panel.request('run', runParams('run-half', 'tiny', TEXT.repeat(8), tokenizer, { backend: 'wasm', memoryLimitMB: 1 }));
    assert.deepEqual(half.layers, [0]);
    assert.match(half.note ?? '', /^kept the internals of 1 of 2 layers \(0\): all of them would take 2 MB, over mambaScope\.runMemoryLimitMB \(1 MB\)$/);
    assert.equal(half.next!.ids.values.length, 192, 'the next-token view covers every token');
    const big = runParams('run-big', 'tiny', TEXT.repeat(8), tokenizer, { backend: 'wasm', memoryLimitMB: 0.05 });
    await assert.rejects(panel.request('run', big), /run-big: 192 tokens keep 1 MB per layer for the panel's views, over mambaScope\.runMemoryLimitMB \(0\.05 MB\): raise the setting mambaScope\.runMemoryLimitMB/);
    assert.equal((await panel.request('describe', null)).runId, 'run-half');
  });

  for (const backend of ['wasm', 'webgpu'] as const) {
    it(`${backend}: a model too large to send at once is streamed from the host a layer at a time, with the same results`, async function () {
      if (backend === 'webgpu') {
        await panel.close();
        panel = await Panel.open();
      }
      const settings = { ...SETTINGS, backend, wasmPath: panel.server.wasmPath };
      await panel.notify('setSettings', settings);
      const { params: whole, tokenizer } = await loadModelParams(TINY_MODEL, `tiny-${backend}`);
      const run = (id: string, modelId: string) => panel.request('run', runParams(id, modelId, TEXT, tokenizer, { backend, memoryLimitMB: 1200 }));
      await panel.request('loadModel', whole);
      const resident = await run(`resident-${backend}`, `tiny-${backend}`);
      // A budget of 1 MB: mamba1-tiny's 1.46 MB of weights go as the backbone (0.52 MB) and its layers (0.47 MB each), asked for one by one.
      const { params: streamed, layerTensors } = await streamedModelParams(TINY_MODEL, `streamed-${backend}`, 1e6);
      assert.ok(streamed.streamed!.length > 0 && Object.keys(streamed.tensors).every((n) => !/layers\.\d/.test(n)));
      await panel.offerTensors(layerTensors);
      await panel.request('loadModel', streamed);
      const first = await run(`streamed-${backend}`, `streamed-${backend}`);
      const second = await run(`streamed2-${backend}`, `streamed-${backend}`);
      assert.deepEqual(first.perToken.delta!.values, resident.perToken.delta!.values);
      assert.deepEqual(first.next!.ids.values, resident.next!.ids.values);
      assert.deepEqual(second.perToken.delta!.values, resident.perToken.delta!.values);
      const reads = await panel.page.evaluate(() => (window as unknown as { fakeHost: { weightReads: string[] } }).fakeHost.weightReads.splice(0));
      const layerReads = reads.filter((n) => n.startsWith('backbone.layers.0.'));
      // tfjs reads each layer again in every forward; the native engine once, at upload, and holds it on the GPU.
      assert.equal(layerReads.length, (backend === 'wasm' ? 2 : 1) * streamed.streamed!.filter((t) => t.name.startsWith('backbone.layers.0.')).length, reads.join(' '));
      assert.equal((await panel.request('describe', null)).engine, backend === 'wasm' ? 'tfjs' : 'webgpu-native');
      assert.deepEqual(panel.errors, []);
    });
  }
});
