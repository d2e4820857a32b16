/**
 * Compute in the webview: 'webgpu' is the native WebGPU engine on Chromium's SwiftShader adapter,
 * and a run of the bundled demo model really computes there (its per-token Δ and next-token
 * probabilities match the float64 reference); a switch to a tfjs backend lets the weights go for
 * the host to send again; 'auto' passes over the software adapter, and without
 * --enable-unsafe-webgpu the panel falls back and says why; the wasm backend loads its binaries
 * from the URL the host gives.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { normalizedError } from '../../src/engine/tensor';
import { NodeFolderStore } from '../../src/node/files';
import type { ViewSettings } from '../../src/protocol';
import { DEMO_MODEL, loadModelParams, runParams } from './messages';
import { Panel } from './panel';
import { ROOT } from './server';

const SETTINGS: ViewSettings = { backend: 'auto', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };
/** A short sample: SwiftShader compiles every new shader shape, so the first run of a long one takes minutes on 2 cores. */
const TEXT = readFileSync(join(DEMO_MODEL, 'samples', 'demo0.py'), 'utf8').slice(0, 120);

/** The run's per-token mean Δ of every layer and top-1 probabilities against the float64 reference's. */
interface RunReply {
  readonly layers: readonly number[];
  readonly perToken: { readonly delta?: { readonly values: readonly number[] } };
  readonly next?: { readonly ids: { readonly values: readonly number[] }; readonly probs: { readonly values: readonly number[] } };
}

async function expectReference(summary: RunReply, folder: string, ids: Int32Array): Promise<void> {
  const model = await loadModelFolder(new NodeFolderStore(folder), 'float64');
  const ref = referenceForward(model, ids);
  const L = ids.length;
  assert.deepEqual(summary.layers, ref.layers.map((l) => l.layer));
  const delta = summary.perToken.delta!;
  ref.layers.forEach((layer, i) => {
    const d = layer.tensors.delta!;
    const D = d.shape[1];
    const want = Array.from({ length: L }, (_, t) => d.data.subarray(t * D, (t + 1) * D).reduce((a, b) => a + b, 0) / D);
    const err = normalizedError(delta.values.slice(i * L, (i + 1) * L), want);
    assert.ok(err < 1e-5, `layer ${i}: per-token mean Δ off by ${err}`);
  });
  const V = ref.logits!.shape[1];
  const refProbs = Array.from({ length: L }, (_, t) => {
    const row = ref.logits!.data.subarray(t * V, (t + 1) * V);
    const m = Math.max(...row);
    const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
    return Math.exp(row[summary.next!.ids.values[t]] - m) / z;
  });
  assert.ok(normalizedError(summary.next!.probs.values, refProbs) < 1e-4, 'top-1 next-token probabilities');
}

describe('tfjs backends in Chromium', function () {
  it('auto passes over SwiftShader (a software adapter) for wasm, and says why', async () => {
    const panel = await Panel.open();
    try {
      await panel.notify('setSettings', { ...SETTINGS, wasmPath: panel.server.wasmPath });
      const info = await panel.waitForNotification('backendInfo');
      assert.equal(info.backend, 'wasm');
      assert.deepEqual(info.fallbacksTried.map((f: { backend: string }) => f.backend), ['webgpu', 'webgl']);
      assert.match(info.fallbacksTried[0].error, /only a software adapter \(swiftshader\); wasm is faster on this CPU/);
      assert.match((await panel.page.textContent('.backend')) ?? '', /^WASM — WebGPU not used: only a software adapter/);
    } finally {
      await panel.close();
    }
  });

  it('webgpu by name runs the native engine on SwiftShader, and a run of the demo model computes there and matches the float64 reference', async () => {
    const panel = await Panel.open();
    try {
      await panel.notify('setSettings', { ...SETTINGS, backend: 'webgpu' });
      const info = await panel.waitForNotification('backendInfo');
      assert.equal(info.backend, 'webgpu');
      assert.equal(info.adapter.architecture, 'swiftshader');
      assert.deepEqual(info.fallbacksTried, []);
      assert.match((await panel.page.textContent('.backend')) ?? '', /^WebGPU \(SwiftShader\)$/);

      const { params, tokenizer } = await loadModelParams(DEMO_MODEL, 'demo');
      const loaded = await panel.request('loadModel', params);
      assert.equal(loaded.backend.backend, 'webgpu');
      const run = runParams('demo0', 'demo', TEXT, tokenizer, { backend: 'webgpu', memoryLimitMB: 1200 });
      const summary = await panel.request('run', run);
      assert.equal(summary.backend.backend, 'webgpu');
      assert.equal((await panel.request('describe', null)).engine, 'webgpu-native');

      await expectReference(summary, DEMO_MODEL, new Int32Array(run.ids));
      await panel.waitForView('heatmap');
      assert.ok((await panel.request('describe', null)).views.heatmap.drawn);

      // To a tfjs backend: the native engine's weights cannot move there; the panel lets them go and says so.
      await panel.notify('setSettings', { ...SETTINGS, backend: 'wasm', wasmPath: panel.server.wasmPath });
      const wasmRun = { ...run, settings: { ...run.settings, backend: 'wasm' as const } };
      await assert.rejects(panel.request('run', wasmRun), /its weights are in the native WebGPU engine, and wasm runs on tfjs: send them again/);
      assert.deepEqual((await panel.notifications('modelReleased')).map((n) => n.params), [{ modelId: params.modelId }]);
      assert.equal((await panel.request('describe', null)).engine, null);
      // What the host does then: send the weights again and re-run.
      assert.equal((await panel.request('loadModel', params)).backend.backend, 'wasm');
      const again = await panel.request('run', wasmRun);
      assert.equal(again.backend.backend, 'wasm');
      assert.equal((await panel.request('describe', null)).engine, 'tfjs');
      assert.ok(normalizedError(again.next!.probs.values, summary.next!.probs.values) < 1e-4, 'wasm and the native engine agree');
      assert.deepEqual(panel.errors, []);
    } finally {
      await panel.close();
    }
  });

  it('the native engine runs Mamba-2 (mamba2-tiny) in Chromium too, matching the float64 reference', async () => {
    const panel = await Panel.open();
    try {
      await panel.notify('setSettings', { ...SETTINGS, backend: 'webgpu' });
      const { params, tokenizer } = await loadModelParams(join(ROOT, 'test', 'fixtures', 'mamba2-tiny'), 'm2');
      await panel.request('loadModel', params);
      const run = runParams('m2run', 'm2', TEXT, tokenizer, { backend: 'webgpu', memoryLimitMB: 1200 });
      const summary = await panel.request('run', run);
      assert.equal((await panel.request('describe', null)).engine, 'webgpu-native');
      await expectReference(summary, join(ROOT, 'test', 'fixtures', 'mamba2-tiny'), new Int32Array(run.ids));
      assert.deepEqual(panel.errors, []);
    } finally {
      await panel.close();
    }
  });

  it('without WebGPU (no --enable-unsafe-webgpu) auto falls back and says why', async () => {
    const panel = await Panel.open({ withoutWebGpu: true });
    try {
      await panel.notify('setSettings', { ...SETTINGS, wasmPath: panel.server.wasmPath });
      const info = await panel.waitForNotification('backendInfo');
      assert.notEqual(info.backend, 'webgpu');
      assert.equal(info.fallbacksTried[0].backend, 'webgpu');
      assert.match(info.fallbacksTried[0].error, /no adapter/);
      assert.match(info.reason, /^fallback: webgpu failed/);
      assert.match((await panel.page.textContent('.backend')) ?? '', /^(WebGL|WASM|CPU) — WebGPU not used: requestAdapter\(\) returned no adapter/);
    } finally {
      await panel.close();
    }
  });

  it('the wasm backend runs with the .wasm files at the host’s URL', async () => {
    const panel = await Panel.open({ withoutWebGpu: true });
    try {
      await panel.notify('setSettings', { ...SETTINGS, backend: 'wasm', wasmPath: panel.server.wasmPath });
      const info = await panel.waitForNotification('backendInfo');
      assert.deepEqual({ backend: info.backend, reason: info.reason }, { backend: 'wasm', reason: 'requested' });
    } finally {
      await panel.close();
    }
  });
});
