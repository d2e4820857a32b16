/**
 * The attention view in Chromium: the channel mean the panel computes from the dump's Δ, B, C and
 * mamba1-tiny's A matches the fixture's layers.i.hidden_attention (an independent float64
 * computation); the per-channel map and the rollout match the engine's functions run in Node;
 * the selected token's row is highlighted, a click selects the attended token, a long computation
 * runs in a worker and can be cancelled (the worker ends) and started again, and a sample over
 * the token limit gets a message naming the limit.
 */
import assert from 'node:assert/strict';
import { attentionRollout, hiddenAttentionChannel } from '../../src/engine/analysis/attention';
import { loadModelFolder } from '../../src/engine/model/load';
import { negExp } from '../../src/engine/reference/scan';
import type { Tensor } from '../../src/engine/tensor';
import { NodeFolderStore } from '../../src/node/files';
import type { DumpParams, NamedTensors, ViewSettings } from '../../src/protocol';
import { dumpParams, loadModelParams, SAMPLE1_DUMP, TINY_MODEL } from './messages';
import { Panel } from './panel';
import { scanOf } from '../../src/engine/layers/kind';

const SETTINGS: ViewSettings = { backend: 'cpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };

function tensorOf(all: NamedTensors, name: string): Tensor<Float32Array> {
  return { shape: all[name].shape, data: new Float32Array(all[name].buffer) };
}

/** The attention view's CSV export as a [rows, cols] matrix of numbers. */
async function exportedMatrix(panel: Panel): Promise<number[][]> {
  const res = await panel.request('exportView', { kind: 'csv', view: 'attention' });
  const text = Buffer.from(res.bytes as unknown as string, 'base64').toString('utf8');
  return text.trim().split('\n').slice(1).map((line) => line.slice(line.lastIndexOf('’') + 1).split(',').slice(1).map(Number));
}

function assertClose(got: number[][], want: ArrayLike<number>, L: number, what: string): void {
  let scale = 0;
  for (let i = 0; i < L * L; i++) scale = Math.max(scale, Math.abs(want[i]));
  assert.equal(got.length, L, `${what}: ${L} rows`);
  let worst = 0;
  for (let t = 0; t < L; t++) {
    assert.equal(got[t].length, L, `${what}: row ${t} has ${L} columns`);
    for (let s = 0; s < L; s++) worst = Math.max(worst, Math.abs(got[t][s] - want[t * L + s]));
  }
  assert.ok(worst <= 1e-4 * scale, `${what}: max error ${worst} against max |α| ${scale}`);
}

async function setMode(panel: Panel, mode: string): Promise<void> {
  await panel.page.evaluate((m) => {
    const s = document.querySelector('.view-attention .attention-mode') as HTMLElement & { value: string };
    s.value = m;
    s.dispatchEvent(new Event('change'));
  }, mode);
}

async function waitForTitle(panel: Panel, pattern: RegExp): Promise<void> {
  await panel.page.waitForFunction((p) => new RegExp(p).test(document.querySelector('.view-attention .view-title')?.textContent ?? ''), pattern.source, { timeout: 30_000 });
  await panel.waitForView('attention');
}

/** A one-layer dump of n tokens with constant Δ, u, B and C (shapes of mamba1-tiny). */
function constantDump(n: number): DumpParams {
  const filled = (cols: number) => ({ shape: [n, cols], dtype: 'float32' as const, buffer: new Float32Array(n * cols).fill(0.1).buffer as ArrayBuffer });
  const tensors: NamedTensors = { input_ids: { shape: [n], dtype: 'int32', buffer: new Int32Array(n).buffer as ArrayBuffer } };
  for (const [k, cols] of [['delta', 256], ['u', 256], ['B', 16], ['C', 16]] as const) tensors[`layers.0.${k}`] = filled(cols);
  const index = Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] }));
  return { name: `constant-${n}.safetensors`, metadata: { format: 'mamba-dump/1' }, index, tensors };
}

describe('attention view in Chromium', function () {
  let panel: Panel;
  let dump: DumpParams;
  let L: number;

  before(async () => {
    panel = await Panel.open();
    await panel.notify('setSettings', SETTINGS);
    await panel.request('loadModel', (await loadModelParams(TINY_MODEL, 'tiny')).params);
    dump = await dumpParams(SAMPLE1_DUMP);
    L = dump.tensors.input_ids.shape[0];
    await panel.request('showDump', dump);
    await panel.page.click('vscode-tab-header[data-view="attention"]');
    await waitForTitle(panel, /layer 0 · mean over channels/);
  });

  after(async () => {
    assert.deepEqual(panel?.errors ?? [], []);
    await panel?.close();
  });

  it('the channel mean computed in the panel matches the fixture’s hidden_attention (layer 0 and 1)', async () => {
    assertClose(await exportedMatrix(panel), tensorOf(dump.tensors, 'layers.0.hidden_attention').data, L, 'layer 0');
    await panel.page.keyboard.press('ArrowDown');
    await waitForTitle(panel, /layer 1 · mean over channels/);
    assertClose(await exportedMatrix(panel), tensorOf(dump.tensors, 'layers.1.hidden_attention').data, L, 'layer 1');
  });

  it('selected channel and rollout modes match the engine run in Node', async () => {
    const model = await loadModelFolder(new NodeFolderStore(TINY_MODEL), 'float64');
    const A = negExp(scanOf(model.layers[1]).aLog);
    await setMode(panel, 'channel');
    await panel.page.waitForFunction(() => /Select a channel/.test(document.querySelector('.view-attention .attention-message')?.textContent ?? ''));
    await panel.page.locator('.view-tokens .tokens').focus();
    for (let i = 0; i < 6; i++) await panel.page.keyboard.press(']'); // channel 5
    await waitForTitle(panel, /layer 1 · channel 5/);
    const want = hiddenAttentionChannel(tensorOf(dump.tensors, 'layers.1.delta'), tensorOf(dump.tensors, 'layers.1.B'), tensorOf(dump.tensors, 'layers.1.C'), A, 5);
    assertClose(await exportedMatrix(panel), want.data, L, 'channel 5');

    await setMode(panel, 'rollout');
    await waitForTitle(panel, /layer 1 · rollout over layers 0–1/);
    const rolled = attentionRollout([tensorOf(dump.tensors, 'layers.0.hidden_attention'), tensorOf(dump.tensors, 'layers.1.hidden_attention')]);
    assertClose(await exportedMatrix(panel), rolled[1].data, L, 'rollout');
    await setMode(panel, 'mean');
    await waitForTitle(panel, /mean over channels/);
  });

  it('highlights the selected token’s row; a click on a cell selects the attended token', async () => {
    await panel.page.click('#token-50');
    const rowLit = () => panel.page.evaluate(([t, n]) => {
      const c = document.querySelector('.view-attention .heatmap-overlay') as HTMLCanvasElement;
      const y = Math.floor(((t + 0.5) * c.height) / n);
      const px = c.getContext('2d')!.getImageData(Math.floor(c.width / 2), y - 1, 1, 3).data;
      return [0, 4, 8].some((i) => px[i] > 240 && px[i + 1] > 240 && px[i + 2] > 240 && px[i + 3] > 200);
    }, [50, L] as const);
    const deadline = Date.now() + 5000;
    while (!(await rowLit())) {
      assert.ok(Date.now() < deadline, 'row 50 is not highlighted');
      await new Promise((r) => setTimeout(r, 50));
    }
    const box = (await panel.page.locator('.view-attention .heatmap-plot').boundingBox())!;
    await panel.page.mouse.click(box.x + ((20.5 * box.width) / L), box.y + ((120.5 * box.height) / L));
    await panel.page.waitForFunction(() => document.querySelector('#token-20')?.getAttribute('aria-selected') === 'true');
    // The strip marks the token at once; the host's selectionChanged arrives by postMessage, a task later: wait for it (then the same check).
    await panel.page.waitForFunction(() => (window as any).fakeHost.notifications.filter((n: any) => n.method === 'selectionChanged').pop()?.params.token === 20, null, { timeout: 5000 }).catch(() => undefined);
    const sel = (await panel.notifications('selectionChanged')).pop()!.params;
    assert.equal(sel.token, 20);
  });

  it('a long computation shows its progress and a Cancel button; cancelled, it offers to compute again', async () => {
    await panel.request('showDump', constantDump(1000));
    const progress = panel.page.locator('.view-attention .attention-progress');
    await progress.waitFor({ state: 'visible' });
    assert.match((await progress.textContent()) ?? '', /Computing the implicit attention of layer 0: \d+ of 256 channels/);
    // It runs in a Web Worker (allowed by the CSP's worker-src blob:), not on the UI thread.
    assert.equal(panel.page.workers().length, 1);
    const terminated = new Promise((r) => panel.page.workers()[0].once('close', r));
    await progress.locator('vscode-button').click();
    await terminated;
    const message = panel.page.locator('.view-attention .attention-message');
    await panel.page.waitForFunction(() => /^Cancelled: the implicit attention of layer 0 was not computed/.test(document.querySelector('.view-attention .attention-message')?.textContent ?? ''));
    assert.ok(await progress.isHidden());
    // The other views were not disturbed: the token strip of the same data stays drawn.
    assert.equal(await panel.page.getAttribute('.view-tokens', 'data-state'), 'ready');
    await message.locator('vscode-button').click();
    await waitForTitle(panel, /layer 0 · mean over channels/);
  });

  it('a sample over the token limit gets a message that names the limit', async () => {
    await panel.request('showDump', constantDump(1100));
    await panel.page.waitForFunction(() => /up to 1024 tokens \(limit ATTENTION_MAX_TOKENS\); this sample has 1100/.test(document.querySelector('.view-attention .attention-message')?.textContent ?? ''), null, { timeout: 30_000 });
  });
});
