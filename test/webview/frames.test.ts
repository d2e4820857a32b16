/**
 * Frame times of the shared heatmap at mamba-130m's shape, 2048 tokens × 1536 channels: the
 * first full draw, hovering (synthetic pointer moves, one per animation frame) and panning a
 * zoomed-in view with the real mouse. Timing is reported, never asserted (speed targets belong to
 * benchmarks); the test asserts only that the frames were drawn and measured.
 */
import assert from 'node:assert/strict';
import { toTensorMessage, type DumpParams } from '../../src/protocol';
import { Panel } from './panel';

const L = 2048;
const D = 1536;
const BASE = 'mamba-scope:heatmap-base';
const OVERLAY = 'mamba-scope:heatmap-overlay';

function syntheticDump(): DumpParams {
  const delta = new Float32Array(L * D);
  let s = 12345;
  for (let i = 0; i < delta.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    delta[i] = Math.log1p(Math.exp(((s >>> 8) / (1 << 24)) * 6 - 5)); // softplus of a uniform: Δ-like
  }
  const ids = Int32Array.from({ length: L }, (_, i) => i % 1000);
  const tensors = {
    input_ids: toTensorMessage({ shape: [L], data: ids }),
    'layers.0.delta': toTensorMessage({ shape: [L, D], data: delta }),
  };
  return {
    name: 'synthetic-2048x1536.safetensors',
    metadata: { format: 'mamba-dump/1', tokens: JSON.stringify(Array.from({ length: L }, (_, i) => `tok${i}`)) },
    index: Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype === 'int32' ? 'I32' : 'F32', shape: [...t.shape] })),
    tensors,
  };
}

function stats(xs: number[]): { n: number; median: number; p95: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, median: +q(0.5).toFixed(2), p95: +q(0.95).toFixed(2), max: +(s[s.length - 1] ?? NaN).toFixed(2) };
}

/** Durations (ms) of the User Timing measures `name` recorded since the last clear. */
async function measures(panel: Panel, name: string): Promise<number[]> {
  return panel.page.evaluate((n) => performance.getEntriesByName(n).map((e) => e.duration), name);
}

// In-page code is passed as strings: tsx would wrap named functions in a __name() helper the page lacks.
const START_SAMPLER = `window.__stamps = []; window.__sampling = true;
  (function tick(ts) { window.__stamps.push(ts); if (window.__sampling) requestAnimationFrame(tick); })(performance.now()); 0`;
const STOP_SAMPLER = `window.__sampling = false; window.__stamps.slice(1).map((t, i) => t - window.__stamps[i])`;
const HOVER_120_FRAMES = `(async () => {
  const plot = document.querySelector('.view-heatmap .heatmap-plot');
  const r = plot.getBoundingClientRect();
  const stamps = [];
  for (let i = 0; i < 120; i++) {
    const x = r.left + ((i * 37) % Math.floor(r.width)), y = r.top + ((i * 53) % Math.floor(r.height));
    plot.dispatchEvent(new PointerEvent('pointermove', { clientX: x, clientY: y, bubbles: true }));
    stamps.push(await new Promise((res) => requestAnimationFrame(res)));
  }
  return stamps.slice(1).map((t, i) => t - stamps[i]);
})()`;

describe(`heatmap frame times at ${L} tokens × ${D} channels`, function () {
  let panel: Panel;

  before(async () => {
    panel = await Panel.open({ viewport: { width: 1400, height: 1000 } });
    await panel.notify('setSettings', { backend: 'cpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 });
    await panel.page.evaluate(() => performance.clearMeasures());
    await panel.request('showDump', syntheticDump());
    await panel.waitForView('heatmap');
  });

  after(async () => {
    await panel?.close();
  });

  it('draws the whole tensor, then hover and pan frames, and reports their times', async () => {
    const size = await panel.page.evaluate(() => {
      const c = document.querySelector('.view-heatmap .heatmap-base') as HTMLCanvasElement;
      return { width: c.width, height: c.height };
    });
    const d = await panel.request('describe', null);
    assert.ok(d.views.heatmap.drawn && d.views.heatmap.distinctColors > 100);
    const firstDraw = await measures(panel, BASE);

    await panel.page.evaluate(() => performance.clearMeasures());
    const hoverIntervals = (await panel.page.evaluate(HOVER_120_FRAMES)) as number[];
    const hoverWork = await measures(panel, OVERLAY);

    // Zoom in 4× around the centre (+ key ×6 at 1.25 each), then drag with the real mouse.
    await panel.page.locator('.view-heatmap .heatmap-plot').focus();
    for (let i = 0; i < 6; i++) await panel.page.keyboard.press('+');
    await panel.waitForView('heatmap');
    await panel.page.evaluate(() => performance.clearMeasures());
    const box = (await panel.page.locator('.view-heatmap .heatmap-plot').boundingBox())!;
    await panel.page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.5);
    await panel.page.mouse.down();
    await panel.page.evaluate(START_SAMPLER);
    for (let i = 1; i <= 60; i++) await panel.page.mouse.move(box.x + box.width * (0.8 - i * 0.01), box.y + box.height * (0.5 - i * 0.003));
    const panIntervals = (await panel.page.evaluate(STOP_SAMPLER)) as number[];
    await panel.page.mouse.up();
    const panWork = await measures(panel, BASE);

    const report = {
      canvas: `${size.width}×${size.height} px`,
      firstFullDrawMs: stats(firstDraw),
      hover: { overlayDrawMs: stats(hoverWork), frameIntervalMs: stats(hoverIntervals) },
      pan: { baseDrawMs: stats(panWork), frameIntervalMs: stats(panIntervals) },
    };
    console.log(`      frame times ${L}×${D}: ${JSON.stringify(report)}`);
    assert.ok(firstDraw.length > 0, 'first draw measured');
    assert.ok(hoverWork.length > 10 && hoverIntervals.length > 10, 'hover frames measured');
    assert.ok(panWork.length > 10 && panIntervals.length > 10, 'pan frames measured');
    assert.deepEqual(panel.errors, []);
  });
});
