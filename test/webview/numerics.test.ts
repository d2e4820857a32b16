/**
 * The numerics view in Chromium, fed the message "Compare Dumps…" builds (comparisonParams, run
 * in Node on the fixtures): a golden dump against a copy with one y element changed and one Δ
 * set to NaN. The finder names the NaN's layer and quantity, the error heatmap opens on the
 * first divergent tensor with its first divergence named and selectable in the token strip, and
 * the exp(Δ·A) histograms give the same round-to-1/underflow counts as the engine in Node.
 */
import assert from 'node:assert/strict';
import { decayHistograms } from '../../src/engine/analysis/decayHistogram';
import { loadModelFolder } from '../../src/engine/model/load';
import { negExp } from '../../src/engine/reference/scan';
import { comparisonParams } from '../../src/extension/comparison';
import { NodeFolderStore } from '../../src/node/files';
import type { ViewSettings } from '../../src/protocol';
import { editedCopy, GOLDEN, memoryDump, openDump } from '../unit/numerics.fixtures';
import { dumpParams, loadModelParams, TINY_MODEL } from './messages';
import { Panel } from './panel';
import { scanOf } from '../../src/engine/layers/kind';

const SETTINGS: ViewSettings = { backend: 'cpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };

describe('numerics view in Chromium', function () {
  let panel: Panel;
  let D: number;

  before(async () => {
    panel = await Panel.open();
    await panel.notify('setSettings', SETTINGS);
    await panel.request('loadModel', (await loadModelParams(TINY_MODEL, 'tiny')).params);
    const golden = await openDump(GOLDEN);
    D = golden.info('layers.1.y')!.shape[1];
    const broken = await memoryDump('broken', await editedCopy(golden, {
      'layers.1.y': (y) => (y[40 * D + 7] += 1),
      'layers.1.delta': (d) => (d[12 * D + 3] = NaN),
    }));
    const params = await comparisonParams(golden, broken, await dumpParams(GOLDEN), 'broken.safetensors');
    await panel.request('showComparison', params);
    await panel.waitForView('numerics');
  });

  after(async () => {
    assert.deepEqual(panel?.errors ?? [], []);
    await panel?.close();
  });

  it('the NaN/Inf finder names the first layer and quantity of each file', async () => {
    const lines = await panel.page.locator('.view-numerics .nonfinite-line').allTextContents();
    assert.equal(lines[0], 'a (mamba1-sample1.safetensors): no NaN or Inf.');
    assert.equal(lines[1], 'b (broken.safetensors): first non-finite value in layer 1, delta: layers.1.delta[12, 3] = NaN (token 12)');
  });

  it('opens the error heatmap on the first divergence (Δ’s NaN at token 12), marked and selectable; y’s change is found too', async () => {
    assert.equal(await panel.page.locator('.view-numerics .numerics-tensor').inputValue(), 'layers.1.delta');
    assert.match(await panel.page.locator('.view-numerics .divergence').textContent() ?? '', /: layers\.1\.delta\[12, 3\], token 12$/);
    await panel.page.click('.view-numerics .goto-divergence');
    await panel.page.waitForFunction(() => document.querySelector('#token-12')?.getAttribute('aria-selected') === 'true');
    const sel = (await panel.notifications('selectionChanged')).pop()!.params;
    assert.deepEqual([sel.token, sel.layer], [12, 1]);
    await panel.page.selectOption('.view-numerics .numerics-tensor', 'layers.1.y');
    assert.match(await panel.page.locator('.view-numerics .divergence').textContent() ?? '', /: layers\.1\.y\[40, 7\], token 40$/);
    const d = (await panel.request('describe', null)).views.numerics;
    assert.ok(d.drawn && Math.abs(d.max - 1) < 1e-5, `error map of y drawn with max ${d.max}`);
    const others = await panel.page.locator('.view-numerics .numerics-tensor option').allTextContents();
    assert.deepEqual(others.filter((o) => o.includes('diverges')).map((o) => o.split(' ')[0]), ['layers.1.delta', 'layers.1.y']);
  });

  it('draws the drift against position under the heatmap: the largest |a − b| of each token, y\'s changed element at token 40', async () => {
    // layers.1.y is chosen (the test before). Its 233 tokens are one 512-token bucket: the caption says the chart is per row.
    assert.equal(await panel.page.locator('.view-numerics .numerics-drift').textContent(), 'Max |a − b| of layers.1.y per row along its first axis.');
    const canvas = panel.page.locator('.view-numerics .line-chart canvas');
    const box = (await canvas.boundingBox())!;
    const readout = async (row: number) => {
      await canvas.hover({ position: { x: ((row + 0.5) / 233) * box.width, y: box.height / 2 } });
      return panel.page.locator('.view-numerics .line-chart-readout').textContent();
    };
    assert.match((await readout(40)) ?? '', /^40 ‘.*’: max \|a − b\| = 1$/);
    assert.match((await readout(100)) ?? '', /: max \|a − b\| = 0$/, 'a row the edit did not touch');
  });

  it('histograms of exp(Δ·A) per precision with the engine’s round-to-1 and underflow counts (layer 1)', async () => {
    const model = await loadModelFolder(new NodeFolderStore(TINY_MODEL), 'float32');
    const golden = await openDump(GOLDEN);
    const aLog = scanOf(model.layers[1]).aLog;
    const A = negExp({ shape: aLog.shape, data: Float64Array.from(aLog.data) });
    const delta = await golden.readFloat('layers.1.delta', 'float32');
    const want = decayHistograms({ shape: delta.shape, data: Float64Array.from(delta.data) }, { shape: A.shape, data: Float64Array.from(A.data, (v) => Math.fround(v)) });
    await panel.page.waitForFunction(() => /layer 1$/.test(document.querySelector('.view-numerics .histogram-title')?.textContent ?? ''));
    for (const p of want.histograms) {
      const text = await panel.page.locator(`.view-numerics .decay-histogram[data-precision="${p.precision}"] .histogram-counts`).textContent();
      assert.equal(text, `rounds to 1: ${p.roundsToOne} · underflows to 0: ${p.underflowsToZero}`, p.precision);
    }
    assert.ok(want.histograms.some((p) => p.roundsToOne > 0), 'some decay rounds to 1 in a low precision');
  });

  // Last: it leaves the comparison. (A run inspected after Compare Dumps opened on the numerics tab, whose heatmap never drew.)
  it('other data shown after the comparison opens on the heatmap: the numerics tab, opened for the comparison, gives way', async () => {
    assert.equal(await panel.page.locator('.view-numerics').isVisible(), true);
    await panel.request('showDump', await dumpParams(GOLDEN));
    await panel.waitForView('heatmap');
    assert.equal(await panel.page.locator('.view-numerics').isVisible(), false, 'the numerics view is hidden');
    const d = await panel.request('describe', null);
    assert.ok(d.views.heatmap?.drawn, `the heatmap drew: ${JSON.stringify(d.views.heatmap)}`);
  });
});
