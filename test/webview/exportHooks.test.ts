/**
 * The panel's exports name their tensor with the TransformerLens / MambaLens hook names (issue
 * 16, interop), the aliases the CLI's dumps give the same tensor: in Chromium on the fixture dump
 * (mamba1-tiny on sample1, transformers' run, which records the states after tokens 0, 58, 116
 * and 232). Each export's hook names are the libraries' names of what it holds (MambaLens's
 * hook_h.{t}: the state after token t, checked against the dump's recorded row), the CLI's dump
 * of the same model maps each of them to the same tensor, and a derived view (silu(z)) has none.
 */
import assert from 'node:assert/strict';
import { buildDump } from '../../src/engine/formats/dump';
import { NpyFile } from '../../src/engine/formats/npy';
import { MemorySource } from '../../src/engine/io';
import { isLanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import type { DumpParams, ExportKind, ViewSettings } from '../../src/protocol';
import { NodeFolderStore } from '../../src/node/files';
import { dumpParams, SAMPLE1_DUMP, TINY_MODEL } from './messages';
import { Panel } from './panel';

const SETTINGS: ViewSettings = { backend: 'cpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };

describe('hook names in the panel’s exports (fixture dump, Chromium)', function () {
  let panel: Panel;
  let dump: DumpParams;
  /** The CLI's hook → dump key, from a dump of mamba1-tiny that records the state after token 58. */
  let cliHooks: Record<string, string>;

  before(async () => {
    const model = await loadModelFolder(new NodeFolderStore(TINY_MODEL), 'float64');
    assert.ok(isLanguageModel(model));
    const ids = Int32Array.from({ length: 60 }, (_, i) => (i * 7 + 3) % 500);
    cliHooks = JSON.parse(buildDump({ inputIds: ids, pieces: [...ids].map(String), result: referenceForward(model, ids, { statesAt: [58] }), metadata: {} }).metadata.hook_names);
    dump = await dumpParams(SAMPLE1_DUMP);
    panel = await Panel.open({ withoutWebGpu: true });
    await panel.notify('setSettings', SETTINGS);
    await panel.request('showDump', dump);
    await panel.waitForView('heatmap');
  });

  after(async () => {
    await panel?.close();
  });

  async function exported(view: string, kind: ExportKind = 'npy') {
    const reply = await panel.request('exportView', { kind, view });
    return { hooks: reply.hookNames, bytes: Buffer.from(reply.bytes, 'base64') };
  }

  async function npyValues(bytes: Buffer): Promise<Float32Array> {
    return (await (await NpyFile.open(new MemorySource('x.npy', bytes), 'x')).readFloat('x', 'float32')).data as Float32Array;
  }

  function floats(name: string): Float32Array {
    return new Float32Array(dump.tensors[name].buffer);
  }

  it('the heatmap’s Δ is blocks.0.hook_delta, in the .npy reply and the CSV’s corner cell, as the CLI’s dump names layers.0.delta', async () => {
    const npy = await exported('heatmap');
    assert.deepEqual(npy.hooks, ['blocks.0.hook_delta']);
    assert.equal(cliHooks['blocks.0.hook_delta'], 'layers.0.delta');
    assert.deepEqual(await npyValues(npy.bytes), floats('layers.0.delta'));
    const csv = await exported('heatmap', 'csv');
    assert.deepEqual(csv.hooks, ['blocks.0.hook_delta']);
    assert.match(csv.bytes.toString('utf8'), /^blocks\.0\.hook_delta,channel 0,/);
  });

  it('a derived view has no hook name: silu(z) is not hook_skip (z before SiLU)', async () => {
    await panel.notify('setSettings', { ...SETTINGS, metric: 'gate' });
    await panel.page.waitForFunction(() => document.querySelector('.view-heatmap .view-title')?.textContent?.includes('layer 0') && !document.querySelector('.view-heatmap .view-title')?.textContent?.startsWith('Δ'));
    await panel.waitForView('heatmap');
    const csv = await exported('heatmap', 'csv');
    assert.equal(csv.hooks, undefined);
    assert.match(csv.bytes.toString('utf8'), /^,channel 0,/);
    await panel.notify('setSettings', SETTINGS);
  });

  it('the state at token 58 of layer 1 is blocks.1.hook_h.58: the dump’s recorded state after token 58', async () => {
    await panel.notify('selectToken', { runId: dump.name, token: 58, layer: 1 });
    await panel.page.waitForFunction(() => /token 58 .*layer 1 \(recorded in the data\)/.test(document.querySelector('.view-state .state-at-token .view-title')?.textContent ?? ''));
    const { hooks, bytes } = await exported('state');
    assert.deepEqual(hooks, ['blocks.1.hook_h.58']);
    assert.equal(cliHooks['blocks.1.hook_h.58'], 'layers.1.h[0]');
    // The dump's h_tokens are [0, 58, 116, 232]: row 1 is the state after token 58.
    assert.deepEqual([...new Int32Array(dump.tensors['layers.1.h_tokens'].buffer)], [0, 58, 116, 232]);
    const [, D, N] = dump.tensors['layers.1.h'].shape;
    assert.deepEqual(await npyValues(bytes), floats('layers.1.h').subarray(D * N, 2 * D * N));
  });

  it('the tensor browser’s layers.0.hidden_in is blocks.0.hook_resid_pre and hook_embed; a tensor no library names (transformers’ hf_out) has none', async () => {
    await panel.notify('selectToken', { runId: dump.name, token: 58, layer: 0 });
    await panel.page.click('vscode-tab-header[data-view="tensors"]');
    await panel.waitForView('tensors');
    for (const [name, want] of [['layers.0.hidden_in', ['blocks.0.hook_resid_pre', 'hook_embed']], ['layers.0.hf_out', undefined]] as const) {
      await panel.page.evaluate((n) => {
        const s = document.querySelector('.view-tensors vscode-single-select[aria-label="Tensor to show"]') as HTMLElement & { value: string };
        s.value = n;
        s.dispatchEvent(new Event('change'));
      }, name);
      await panel.page.waitForFunction((n) => (document.querySelector('.view-tensors .view-note')?.textContent ?? '').startsWith(`${n} `), name);
      await panel.waitForView('tensors');
      const { hooks, bytes } = await exported('tensors');
      assert.deepEqual(hooks, want, name);
      for (const h of want ?? []) assert.equal(cliHooks[h], name, `the CLI's ${h}`);
      assert.deepEqual(await npyValues(bytes), floats(name), name);
    }
    assert.deepEqual(panel.errors, []);
  });
});
