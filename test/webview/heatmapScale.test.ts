/**
 * The heatmaps' colour scales in headless Chromium, on a small dump whose values are chosen so
 * the modes disagree: Δ spans four decades and holds an exact 0, and each channel has its own
 * magnitude; u is signed. For linear, log₁₀, per-channel min–max and (u) symmetric log, the pixel
 * at each cell's centre is the colormap at the position this test computes from the values, and
 * the legend names the mode. The choice is per view and kept across new data.
 */
import assert from 'node:assert/strict';
import type { DumpParams, ViewSettings } from '../../src/protocol';
import { toTensorMessage } from '../../src/protocol';
import { colormapRgb, LUT_SIZE } from '../../webview/render/colormaps';
import { Panel } from './panel';

const SETTINGS: ViewSettings = { backend: 'cpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };
const L = 8, D = 4, N = 2;

/** Δ[t, d] = (t + 1)² · 10^(d − 3), with Δ[0, 0] = 0: channel 3 is 1000× channel 0. */
const delta = Float32Array.from({ length: L * D }, (_, i) => (i === 0 ? 0 : (Math.floor(i / D) + 1) ** 2 * 10 ** ((i % D) - 3)));
/** u[t, d] = (t − 3.5) · 10^(d − 2): signed, four decades. */
const u = Float32Array.from({ length: L * D }, (_, i) => (Math.floor(i / D) - 3.5) * 10 ** ((i % D) - 2));

function dump(name: string): DumpParams {
  const tensors = {
    input_ids: toTensorMessage({ shape: [L], data: Int32Array.from({ length: L }, (_, t) => t) }),
    'layers.0.delta': toTensorMessage({ shape: [L, D], data: delta }),
    'layers.0.u': toTensorMessage({ shape: [L, D], data: u }),
    'layers.0.B': toTensorMessage({ shape: [L, N], data: new Float32Array(L * N).fill(1) }),
  };
  return {
    name,
    metadata: { tokens: JSON.stringify(Array.from({ length: L }, (_, t) => `t${t}`)) },
    index: Object.entries(tensors).map(([n, m]) => ({ name: n, dtype: m.dtype === 'int32' ? 'I32' : 'F32', shape: m.shape })),
    tensors,
  };
}

/** Where cell (t, d) sits on the colour scale, 0..1, computed here from the values. */
const expected = {
  linear: (v: Float32Array, t: number, d: number) => {
    const min = Math.min(...v), max = Math.max(...v);
    return (v[t * D + d] - min) / (max - min);
  },
  /** log₁₀, with values below the smallest non-zero one (here: the 0) at the low end. */
  log: (v: Float32Array, t: number, d: number) => {
    const floor = Math.min(...[...v].filter((x) => x > 0));
    const lg = (x: number) => Math.log10(Math.max(x, floor));
    return (lg(v[t * D + d]) - lg(floor)) / (lg(Math.max(...v)) - lg(floor));
  },
  /** Channel d over all tokens. */
  perRow: (v: Float32Array, t: number, d: number) => {
    const row = Array.from({ length: L }, (_, s) => v[s * D + d]);
    return (v[t * D + d] - Math.min(...row)) / (Math.max(...row) - Math.min(...row));
  },
  /** sign(x)·log₁₀(1 + |x|/c), c = the smallest non-zero |x|. */
  symlog: (v: Float32Array, t: number, d: number) => {
    const c = Math.min(...[...v].filter((x) => x !== 0).map(Math.abs));
    const s = (x: number) => Math.sign(x) * Math.log10(1 + Math.abs(x) / c);
    const all = [...v].map(s);
    return (s(v[t * D + d]) - Math.min(...all)) / (Math.max(...all) - Math.min(...all));
  },
};

async function chooseScale(panel: Panel, view: string, mode: string): Promise<void> {
  await panel.page.evaluate(([v, m]) => {
    const s = document.querySelector(`.view-${v} .scale-mode`) as HTMLElement & { value: string };
    s.value = m;
    s.dispatchEvent(new Event('change'));
  }, [view, mode] as const);
  await panel.waitForView(view);
}

/** The RGB at the centre of every cell of a view's heatmap, [t][d] (tokens along x, channels down). */
function cellColours(panel: Panel, view: string): Promise<[number, number, number][][]> {
  return panel.page.evaluate(([v, cols, rows]) => {
    const c = document.querySelector(`.view-${v} .heatmap-base`) as HTMLCanvasElement;
    const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    return Array.from({ length: cols }, (_, t) => Array.from({ length: rows }, (_, d) => {
      const i = (Math.floor(((d + 0.5) * c.height) / rows) * c.width + Math.floor(((t + 0.5) * c.width) / cols)) * 4;
      return [px[i], px[i + 1], px[i + 2]] as [number, number, number];
    }));
  }, [view, L, D] as const);
}

/** Each cell's colour is viridis at the expected position (± one of its 256 entries: float32 rounding). */
function assertColours(got: [number, number, number][][], position: (t: number, d: number) => number, what: string): void {
  for (let t = 0; t < L; t++) {
    for (let d = 0; d < D; d++) {
      const p = position(t, d);
      const k = Math.round(p * (LUT_SIZE - 1));
      const near = [k - 1, k, k + 1].filter((j) => j >= 0 && j < LUT_SIZE).map((j) => colormapRgb('viridis', j / (LUT_SIZE - 1)).join(','));
      assert.ok(near.includes(got[t][d].join(',')), `${what}: cell (token ${t}, channel ${d}) is rgb(${got[t][d]}), expected viridis(${p.toFixed(4)}) = rgb(${near[1] ?? near[0]})`);
    }
  }
}

async function legendText(panel: Panel, view: string): Promise<string> {
  return (await panel.page.locator(`.view-${view} .legend`).first().textContent()) ?? '';
}

describe('heatmap colour scales in Chromium', function () {
  let panel: Panel;

  before(async () => {
    panel = await Panel.open({ viewport: { width: 1400, height: 1000 } });
    await panel.notify('setSettings', SETTINGS);
    await panel.request('showDump', dump('scales-a'));
    await panel.waitForView('heatmap');
  });

  after(async () => {
    await panel?.close();
  });

  it('linear: Δ between its min and max', async () => {
    assertColours(await cellColours(panel, 'heatmap'), (t, d) => expected.linear(delta, t, d), 'linear');
    const text = await legendText(panel, 'heatmap');
    assert.match(text, /^Δ/);
    assert.doesNotMatch(text, /log|per-/);
  });

  it('log₁₀: decades of Δ, the 0 at the low end', async () => {
    await chooseScale(panel, 'heatmap', 'log');
    assertColours(await cellColours(panel, 'heatmap'), (t, d) => expected.log(delta, t, d), 'log');
    const text = await legendText(panel, 'heatmap');
    assert.match(text, /log₁₀ Δ/);
    assert.match(text, /\(0 too\) at the low end/);
  });

  it('per-channel: each channel between its own min and max over all tokens', async () => {
    await chooseScale(panel, 'heatmap', 'perRow');
    assertColours(await cellColours(panel, 'heatmap'), (t, d) => expected.perRow(delta, t, d), 'per-channel');
    assert.match(await legendText(panel, 'heatmap'), /Δ, per-channel min–max over all tokens/);
  });

  it('log on signed data (u in the tensor browser) is a symmetric log, and the scale is the view’s own', async () => {
    await panel.page.click('vscode-tab-header[data-view="tensors"]');
    await panel.waitForView('tensors');
    await panel.page.evaluate(() => {
      const s = document.querySelector('.view-tensors vscode-single-select[aria-label="Tensor to show"]') as HTMLElement & { value: string };
      s.value = 'layers.0.u';
      s.dispatchEvent(new Event('change'));
    });
    await panel.page.waitForFunction(() => /layers\.0\.u/.test(document.querySelector('.view-tensors .view-note')?.textContent ?? ''));
    await panel.waitForView('tensors');
    // The heatmap view's per-channel choice does not carry over.
    assertColours(await cellColours(panel, 'tensors'), (t, d) => expected.linear(u, t, d), 'tensors, linear');
    await chooseScale(panel, 'tensors', 'log');
    assertColours(await cellColours(panel, 'tensors'), (t, d) => expected.symlog(u, t, d), 'symlog');
    assert.match(await legendText(panel, 'tensors'), /symlog₁₀ u.*sign\(x\)·log₁₀\(1 \+ \|x\|\/c\), c = 0\.005/);
  });

  it('keeps each view’s choice when new data arrives', async () => {
    await panel.page.click('vscode-tab-header[data-view="heatmap"]');
    await panel.request('showDump', dump('scales-b'));
    await panel.waitForView('heatmap');
    assertColours(await cellColours(panel, 'heatmap'), (t, d) => expected.perRow(delta, t, d), 'per-channel after new data');
    assert.equal(await panel.page.evaluate(() => (document.querySelector('.view-heatmap .scale-mode') as HTMLElement & { value: string }).value), 'perRow');
    assert.deepEqual(panel.errors, []);
  });
});
