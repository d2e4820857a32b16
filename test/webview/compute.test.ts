/**
 * The panel's compute session in Chromium: once uploaded, the weights live only in the tfjs
 * backend, so a backend switch moves them there from the old backend (no second loadModel from
 * the host) and the results stay the same; and a run over mambaScope.runMemoryLimitMB is refused
 * before any work, naming the setting, while the panel keeps showing the last run.
 */
import assert from 'node:assert/strict';
import type { ViewSettings } from '../../src/protocol';
import { loadModelParams, runParams, TINY_MODEL } from './messages';
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

  it('refuses a run over mambaScope.runMemoryLimitMB before any work, and keeps the last run on screen', async () => {
    const { tokenizer } = await loadModelParams(TINY_MODEL, 'tiny');
    const big = runParams('run-big', 'tiny', TEXT.repeat(8), tokenizer, { backend: 'wasm', memoryLimitMB: 0.05 });
    await assert.rejects(panel.request('run', big), /run-big: \d+ tokens through 2 layers keep \d+ MB for the panel's views, over its limit of 0\.05 MB: raise the setting mambaScope\.runMemoryLimitMB/);
    assert.equal((await panel.request('describe', null)).runId, 'run-wasm');
  });
});
