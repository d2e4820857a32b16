/**
 * The shared heatmap in headless Chromium, on the fixture dump (mamba1-tiny on sample1): the
 * pixels agree with the data (the brightest cell is the largest Δ, the tooltip there names that
 * cell and value), the legend's range is the data's, diverging maps are centred on 0, a planted
 * NaN stays visible, and exports carry the data.
 */
import assert from 'node:assert/strict';
import { openTensorFile } from '../../src/engine/formats/tensorFile';
import { MemorySource } from '../../src/engine/io';
import type { DumpParams, ViewSettings } from '../../src/protocol';
import { dumpParams, SAMPLE1_DUMP } from './messages';
import { Panel } from './panel';

/** ColorBrewer RdBu's dark red end (#67001f): the colour of the largest value on the diverging map. */
const RDBU_TOP = [103, 0, 31] as const;
const SETTINGS: ViewSettings = { backend: 'cpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };

interface Pixel {
  px: number;
  py: number;
  rgb: [number, number, number];
}

/** The brightest pixel of a view's heatmap canvas, or the first one of exactly colour `rgb`. */
async function extremePixel(panel: Panel, view: string, score: 'luminance' | readonly [number, number, number]): Promise<Pixel> {
  return panel.page.evaluate(([v, s]) => {
    const c = document.querySelector(`.view-${v} .heatmap-base`) as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let best = -Infinity, at = 0;
    for (let i = 0; i < d.length; i += 4) {
      const r = d[i], g = d[i + 1], b = d[i + 2];
      const x = s === 'luminance' ? 0.2126 * r + 0.7152 * g + 0.0722 * b : r === s[0] && g === s[1] && b === s[2] ? 1 : 0;
      if (x > best) {
        best = x;
        at = i / 4;
      }
    }
    return { px: at % c.width, py: Math.floor(at / c.width), rgb: [d[at * 4], d[at * 4 + 1], d[at * 4 + 2]] as [number, number, number] };
  }, [view, score] as const);
}

/** Moves the mouse onto a canvas pixel and returns what the tooltip names. */
async function hover(panel: Panel, view: string, p: { px: number; py: number }): Promise<{ x: number; y: number; value: number }> {
  const box = (await panel.page.locator(`.view-${view} .heatmap-base`).first().boundingBox())!;
  await panel.page.mouse.move(box.x + p.px + 0.5, box.y + p.py + 0.5);
  const tip = panel.page.locator(`.view-${view} .heatmap-tooltip`).first();
  await tip.waitFor({ state: 'visible' });
  const [x, y, value] = await Promise.all(['x', 'y', 'value'].map((k) => tip.getAttribute(`data-${k}`)));
  return { x: Number(x), y: Number(y), value: Number(value) };
}

async function legend(panel: Panel, view: string): Promise<Record<'lo' | 'hi' | 'min' | 'max', number>> {
  const l = panel.page.locator(`.view-${view} .legend`).first();
  const get = async (k: string) => Number(await l.getAttribute(`data-${k}`));
  return { lo: await get('lo'), hi: await get('hi'), min: await get('min'), max: await get('max') };
}

function argmax(data: Float32Array, score: (v: number) => number = (v) => v): { index: number; value: number } {
  let index = 0;
  for (let i = 1; i < data.length; i++) if (score(data[i]) > score(data[index])) index = i;
  return { index, value: data[index] };
}

function floats(params: DumpParams, name: string): { data: Float32Array; shape: readonly number[] } {
  const m = params.tensors[name];
  return { data: new Float32Array(m.buffer), shape: m.shape };
}

describe('heatmap in Chromium (fixture dump)', function () {
  let panel: Panel;
  let dump: DumpParams;
  const NAN_AT = { layer: 1, t: 10, d: 20 };

  before(async () => {
    dump = await dumpParams(SAMPLE1_DUMP);
    // One planted NaN, to check it stays visible.
    const D = dump.tensors[`layers.${NAN_AT.layer}.delta`].shape[1];
    new Float32Array(dump.tensors[`layers.${NAN_AT.layer}.delta`].buffer)[NAN_AT.t * D + NAN_AT.d] = NaN;
    panel = await Panel.open({ viewport: { width: 1400, height: 1000 } });
    await panel.notify('setSettings', SETTINGS);
    await panel.request('showDump', dump);
    await panel.waitForView('heatmap');
  });

  after(async () => {
    await panel?.close();
  });

  it('the brightest pixel is the largest Δ: the tooltip there names its token, channel and value', async () => {
    const { data, shape } = floats(dump, 'layers.0.delta');
    const D = shape[1];
    const max = argmax(data);
    const p = await extremePixel(panel, 'heatmap', 'luminance');
    assert.deepEqual(p.rgb, [253, 231, 37], 'the brightest pixel has viridis’ top colour');
    const tip = await hover(panel, 'heatmap', p);
    assert.deepEqual({ t: tip.x, d: tip.y }, { t: Math.floor(max.index / D), d: max.index % D });
    assert.equal(tip.value, max.value);
  });

  it('the legend’s range is the data’s min and max (sequential map)', async () => {
    const { data } = floats(dump, 'layers.0.delta');
    const min = data.reduce((a, b) => Math.min(a, b)), max = data.reduce((a, b) => Math.max(a, b));
    assert.deepEqual(await legend(panel, 'heatmap'), { lo: min, hi: max, min, max });
    const d = await panel.request('describe', null);
    assert.equal(d.views.heatmap.min, min);
    assert.equal(d.views.heatmap.max, max);
    assert.ok(d.views.heatmap.distinctColors > 50, `${d.views.heatmap.distinctColors} colours: not a blank canvas`);
  });

  it('a diverging map is centred on 0 and the pixel in its top colour is the largest silu(z)', async () => {
    await panel.notify('setSettings', { ...SETTINGS, colormap: 'RdBu', metric: 'gate' });
    await panel.page.waitForFunction(() => document.querySelector('.view-heatmap .view-title')?.textContent?.startsWith('silu(z)'));
    await panel.page.waitForSelector('.view-heatmap .legend[data-lo^="-"]');
    await panel.waitForView('heatmap');
    const z = floats(dump, 'layers.0.z');
    const silu = Float32Array.from(z.data, (v) => v / (1 + Math.exp(-v)));
    const min = silu.reduce((a, b) => Math.min(a, b)), max = silu.reduce((a, b) => Math.max(a, b));
    const l = await legend(panel, 'heatmap');
    const m = Math.max(-min, max);
    assert.deepEqual(l, { lo: -m, hi: m, min, max });
    assert.ok(max > -min, 'fixture: the largest |silu(z)| is positive');
    const top = await extremePixel(panel, 'heatmap', RDBU_TOP);
    assert.deepEqual(top.rgb, RDBU_TOP);
    const tip = await hover(panel, 'heatmap', top);
    const best = argmax(silu);
    assert.deepEqual({ t: tip.x, d: tip.y, v: tip.value }, { t: Math.floor(best.index / z.shape[1]), d: best.index % z.shape[1], v: best.value });
    await panel.notify('setSettings', SETTINGS);
    await panel.page.waitForFunction(() => document.querySelector('.view-heatmap .view-title')?.textContent?.startsWith('Δ'));
  });

  it('a NaN stays visible when zoomed out (magenta), is named by the tooltip, and the legend counts it', async () => {
    await panel.page.keyboard.press('Escape');
    await panel.page.locator('.view-tokens .tokens').focus();
    await panel.page.keyboard.press('ArrowDown'); // layer 1
    await panel.page.waitForFunction((l) => document.querySelector('.view-heatmap .view-title')?.textContent?.includes(`layer ${l}`), NAN_AT.layer);
    await panel.waitForView('heatmap');
    const p = await extremePixel(panel, 'heatmap', [255, 0, 255]);
    assert.deepEqual(p.rgb, [255, 0, 255]);
    const tip = await hover(panel, 'heatmap', p);
    assert.deepEqual(tip, { x: NAN_AT.t, y: NAN_AT.d, value: NaN });
    assert.match((await panel.page.locator('.view-heatmap .legend-note').textContent()) ?? '', /1 non-finite/);
    const ringed = await panel.page.evaluate(([x, y]) => {
      const c = document.querySelector('.view-heatmap .heatmap-overlay') as HTMLCanvasElement;
      const d = c.getContext('2d')!.getImageData(x - 9, y - 9, 19, 19).data;
      for (let i = 0; i < d.length; i += 4) if (d[i] === 255 && d[i + 1] === 0 && d[i + 2] === 255 && d[i + 3] === 255) return true;
      return false;
    }, [p.px, p.py] as const);
    assert.ok(ringed, 'the first non-finite value is ringed on the overlay');
    const l = await legend(panel, 'heatmap');
    assert.ok(Number.isFinite(l.min) && Number.isFinite(l.max), 'min/max ignore the NaN');
  });

  it('exports: PNG of the view, CSV and .npy of the shown slice equal to the data', async () => {
    await panel.page.keyboard.press('ArrowUp'); // back to layer 0
    await panel.page.waitForFunction(() => document.querySelector('.view-heatmap .view-title')?.textContent?.includes('layer 0'));
    await panel.waitForView('heatmap');
    const { data, shape } = floats(dump, 'layers.0.delta');
    const png = await panel.request('exportView', { kind: 'png', view: 'heatmap' });
    assert.deepEqual([...Buffer.from(png.bytes, 'base64').subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
    assert.equal(png.suggestedName, 'layer0-heatmap.png');
    const npy = await panel.request('exportView', { kind: 'npy', view: 'heatmap' });
    const store = await openTensorFile(new MemorySource(npy.suggestedName, new Uint8Array(Buffer.from(npy.bytes, 'base64'))));
    const t = await store.readFloat(store.names()[0], 'float32');
    assert.deepEqual(t.shape, shape);
    assert.deepEqual(t.data, data);
    const csv = await panel.request('exportView', { kind: 'csv', view: 'heatmap' });
    const lines = Buffer.from(csv.bytes, 'base64').toString('utf8').trimEnd().split('\n');
    assert.equal(lines.length, shape[0] + 1);
    assert.deepEqual(Float32Array.from(lines[1].split(',').slice(-shape[1]).map(Number)), data.subarray(0, shape[1]));
    assert.deepEqual(panel.errors, []);
  });
});
