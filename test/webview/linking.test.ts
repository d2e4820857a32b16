/**
 * One selection drives every view: a token chosen in the strip, by keyboard, on a heatmap or by
 * the host (editor cursor) shows up in the heatmap crosshair, the state and next-token views, the
 * layer table and the host's notifications; and a view that cannot draw never blanks the others.
 * mamba1-tiny is loaded so the gates and states have the model's A.
 */
import assert from 'node:assert/strict';
import type { DumpParams, ViewSettings } from '../../src/protocol';
import { dumpParams, loadModelParams, SAMPLE1_DUMP, TINY_MODEL } from './messages';
import { Panel } from './panel';

const SETTINGS: ViewSettings = { backend: 'cpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };

/** Whether the heatmap overlay draws the crosshair's white line through the middle of token t's column. */
function crosshairAt(panel: Panel, t: number, tokens: number): Promise<boolean> {
  return panel.page.evaluate(([tok, L]) => {
    const c = document.querySelector('.view-heatmap .heatmap-overlay') as HTMLCanvasElement;
    const x = Math.floor(((tok + 0.5) * c.width) / L);
    const column = c.getContext('2d')!.getImageData(x - 1, Math.floor(c.height / 2), 3, 1).data;
    return [0, 4, 8].some((i) => column[i] > 240 && column[i + 1] > 240 && column[i + 2] > 240 && column[i + 3] > 200);
  }, [t, tokens] as const);
}

/** Waits (up to 5 s: the overlay draws on the next animation frame) until the crosshair is on token t. */
async function expectCrosshair(panel: Panel, t: number, tokens: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await crosshairAt(panel, t, tokens))) {
    assert.ok(Date.now() < deadline, `no crosshair on token ${t}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function text(panel: Panel, selector: string): Promise<string> {
  return (await panel.page.locator(selector).first().textContent()) ?? '';
}

async function waitForText(panel: Panel, selector: string, pattern: RegExp): Promise<void> {
  await panel.page.waitForFunction(([s, p]) => new RegExp(p).test(document.querySelector(s)?.textContent ?? ''), [selector, pattern.source] as const);
}

describe('linked views in Chromium', function () {
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
    await panel.waitForView('heatmap');
  });

  after(async () => {
    await panel?.close();
  });

  it('clicking a token in the strip selects it in every view and tells the host', async () => {
    await panel.page.click('#token-7');
    await waitForText(panel, '.view-next .view-title', /^After 7 /);
    await waitForText(panel, '.view-state .state-at-token .view-title', /token 7 /);
    await panel.waitForView('heatmap');
    await expectCrosshair(panel, 7, L);
    assert.ok(!(await crosshairAt(panel, 100, L)), 'no crosshair elsewhere');
    assert.equal(await panel.page.getAttribute('#token-7', 'aria-selected'), 'true');
    const selection = (await panel.notifications('selectionChanged')).pop()!.params;
    assert.deepEqual({ token: selection.token, layer: selection.layer }, { token: 7, layer: 0 });
    assert.equal((await panel.request('describe', null)).selection?.token, 7);
  });

  it('keys: → moves the token, ↓ the layer (views and legend follow), ] the channel, Esc clears', async () => {
    await panel.page.locator('.view-tokens .tokens').focus();
    await panel.page.keyboard.press('ArrowRight');
    await waitForText(panel, '.view-next .view-title', /^After 8 /);
    await panel.page.keyboard.press('ArrowDown');
    await waitForText(panel, '.view-heatmap .view-title', /layer 1 /);
    await panel.waitForView('heatmap');
    const delta = new Float32Array(dump.tensors['layers.1.delta'].buffer);
    const legend = panel.page.locator('.view-heatmap .legend').first();
    assert.equal(Number(await legend.getAttribute('data-max')), delta.reduce((a, b) => Math.max(a, b)));
    assert.equal(await panel.page.getAttribute('.layer-table tr.selected', 'data-layer'), '1');
    await waitForText(panel, '.view-state .state-at-token .view-title', /token 8 .*layer 1/);
    await expectCrosshair(panel, 8, L);
    assert.deepEqual((await panel.notifications('metricChanged')).pop()!.params, { metric: 'delta', layer: 1 });
    await panel.page.keyboard.press(']');
    await panel.page.keyboard.press(']');
    await waitForText(panel, '.view-state .state-trace .view-title', /^channel 1:/);
    await panel.page.keyboard.press('Escape');
    await waitForText(panel, '.view-state .state-at-token .view-message', /Select a token/);
    await panel.waitForView('heatmap');
    assert.ok(!(await crosshairAt(panel, 8, L)), 'crosshair cleared');
    assert.equal((await panel.notifications('selectionChanged')).pop()!.params.token, null);
  });

  it('clicking a heatmap cell selects its token and channel: the state view draws that channel’s trace', async () => {
    const box = (await panel.page.locator('.view-heatmap .heatmap-base').boundingBox())!;
    await panel.page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.3);
    const tip = panel.page.locator('.view-heatmap .heatmap-tooltip');
    await tip.waitFor({ state: 'visible' });
    const t = Number(await tip.getAttribute('data-x')), d = Number(await tip.getAttribute('data-y'));
    await panel.page.mouse.down();
    await panel.page.mouse.up();
    await waitForText(panel, '.view-state .state-trace .view-title', new RegExp(`^channel ${d}:`));
    const s = (await panel.request('describe', null)).selection!;
    assert.deepEqual({ token: s.token, channel: s.channel }, { token: t, channel: d });
    await expectCrosshair(panel, t, L);
  });

  it('the host can select a token (the editor cursor moved), with a layer', async () => {
    await panel.notify('selectToken', { runId: dump.name, token: 20, layer: 0 });
    await waitForText(panel, '.view-next .view-title', /^After 20 /);
    await waitForText(panel, '.view-heatmap .view-title', /layer 0 /);
    assert.equal(await panel.page.getAttribute('#token-20', 'aria-selected'), 'true');
  });

  it('a view that cannot draw says why and what to do; the others keep drawing', async () => {
    // Layer 0 without z: silu(z) is unavailable, the forget factor and write magnitude still draw.
    const withoutZ: DumpParams = {
      ...dump,
      name: 'no-z.safetensors',
      index: dump.index.filter((e) => e.name !== 'layers.0.z'),
      tensors: Object.fromEntries(Object.entries(dump.tensors).filter(([k]) => k !== 'layers.0.z')),
    };
    await panel.request('showDump', withoutZ);
    await panel.page.click('vscode-tab-header[data-view="gates"]');
    await panel.waitForView('gates');
    assert.match(await text(panel, '.gate-panel[data-metric="gate"] .view-message'), /no z: run the model or dump layers\.0\.z/);
    const d = await panel.request('describe', null);
    assert.ok(d.views.gates.drawn && d.views.gates.distinctColors > 20, 'forget factor and write magnitude drawn');
    assert.ok(d.views.tokens.drawn);

    // A broken layer (Δ one token short): views of that layer show an error; the rest still work.
    const broken: DumpParams = { ...dump, name: 'broken.safetensors', tensors: { ...dump.tensors, 'layers.0.delta': { ...dump.tensors['layers.0.delta'], shape: [L - 1, dump.tensors['layers.0.delta'].shape[1]], buffer: dump.tensors['layers.0.delta'].buffer.slice(0, (L - 1) * 256 * 4) } } };
    await panel.request('showDump', broken);
    await panel.page.click('vscode-tab-header[data-view="heatmap"]');
    await panel.page.waitForSelector('.view-heatmap[data-state="error"]');
    assert.match(await text(panel, '.view-heatmap .view-message'), /disagree on the token count.*other views are unaffected/);
    const errors = await panel.notifications('error');
    assert.ok(errors.some((e) => e.params.view === 'heatmap'), 'the host heard about it');
    await panel.page.click('vscode-tab-header[data-view="tensors"]');
    await panel.waitForView('tensors');
    assert.ok((await panel.request('describe', null)).views.tensors.drawn, 'the tensor browser still draws');
    assert.deepEqual(panel.errors, []);
  });
});
