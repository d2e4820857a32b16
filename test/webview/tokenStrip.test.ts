/**
 * The token strip in headless Chromium, on the bundled model's demo0.py as a newcomer first sees
 * it: rows follow the source's lines and every row in view is drawn inside the strip without any
 * scrolling, and the hover box of a token at the strip's right and bottom edges stays inside the
 * panel.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ViewSettings } from '../../src/protocol';
import { DEMO_MODEL, loadModelParams, runParams } from './messages';
import { Panel } from './panel';

const SETTINGS: ViewSettings = { backend: 'wasm', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };
/** A narrow, short panel: long lines must wrap, and the strip's last rows are near the bottom edge. */
const VIEWPORT = { width: 640, height: 360 };

interface Piece {
  readonly token: number;
  readonly text: string;
  readonly left: number;
  readonly right: number;
  readonly top: number;
  readonly bottom: number;
}

/** Each token's text split at its newlines, with the box each piece is drawn in (viewport px), and the strip's visible box. */
function layout(panel: Panel): Promise<{ pieces: Piece[]; box: { left: number; right: number; top: number; bottom: number }; scrollWidth: number; clientWidth: number }> {
  return panel.page.evaluate(() => {
    const strip = document.querySelector('.view-tokens .tokens') as HTMLElement;
    const b = strip.getBoundingClientRect();
    // The content box: inside the border and the scrollbars.
    const box = { left: b.left + strip.clientLeft, top: b.top + strip.clientTop, right: b.left + strip.clientLeft + strip.clientWidth, bottom: b.top + strip.clientTop + strip.clientHeight };
    const pieces: Piece[] = [];
    for (const span of strip.querySelectorAll<HTMLElement>('.token')) {
      const node = span.firstChild as Text;
      let at = 0;
      for (const text of node.data.split('\n')) {
        if (text) {
          const range = document.createRange();
          range.setStart(node, at);
          range.setEnd(node, at + text.length);
          const r = range.getBoundingClientRect();
          pieces.push({ token: Number(span.dataset.index), text, left: r.left, right: r.right, top: r.top, bottom: r.bottom });
        }
        at += text.length + 1;
      }
    }
    return { pieces, box, scrollWidth: strip.scrollWidth, clientWidth: strip.clientWidth };
  });
}

describe('token strip in Chromium (bundled model, demo0.py)', function () {
  let panel: Panel;

  before(async () => {
    panel = await Panel.open({ viewport: VIEWPORT });
    await panel.notify('setSettings', { ...SETTINGS, wasmPath: panel.server.wasmPath });
    const { params, tokenizer } = await loadModelParams(DEMO_MODEL, 'demo');
    await panel.request('loadModel', params);
    const text = readFileSync(join(DEMO_MODEL, 'samples', 'demo0.py'), 'utf8');
    await panel.request('run', runParams('demo0', 'demo', text, tokenizer, { backend: 'wasm', memoryLimitMB: 1200 }));
    await panel.waitForView('tokens');
  });

  after(async () => {
    await panel?.close();
  });

  it('draws every row in view inside the strip, one source line per row, before any scroll', async () => {
    const { pieces, box, scrollWidth, clientWidth } = await layout(panel);
    assert.ok(scrollWidth <= clientWidth, `the strip scrolls sideways: ${scrollWidth} px of content in ${clientWidth} px`);
    const inView = pieces.filter((p) => p.bottom > box.top && p.top < box.bottom);
    const rows = new Map<number, Piece[]>();
    for (const p of inView) rows.set(Math.round(p.top), [...(rows.get(Math.round(p.top)) ?? []), p]);
    assert.ok(rows.size >= 5, `only ${rows.size} rows in view`);
    for (const [top, row] of rows) {
      const text = row.map((p) => p.text).join('');
      for (const p of row) assert.ok(p.left >= box.left - 0.5 && p.right <= box.right + 0.5, `row at ${top}px: token ${p.token} ${JSON.stringify(p.text)} is drawn at x ${p.left}–${p.right}, outside the strip's ${box.left}–${box.right}`);
      // A row holds one source line (or a wrapped part of one): a newline only ends it.
      assert.ok(!text.slice(0, -1).includes('⏎'), `row at ${top}px runs on past a line end: ${JSON.stringify(text)}`);
    }
    assert.deepEqual(panel.errors, []);
  });

  it('keeps the hover box of the last token of a long line inside the panel, at the right and bottom edges', async () => {
    // The longest line, scrolled to the strip's bottom row: its last token is near both edges.
    const before = await layout(panel);
    const longest = before.pieces.reduce((a, b) => (b.right > a.right ? b : a));
    await panel.page.evaluate((y) => {
      const strip = document.querySelector('.view-tokens .tokens') as HTMLElement;
      strip.scrollTop += y;
    }, longest.bottom - before.box.bottom);
    const { pieces, box } = await layout(panel);
    const last = pieces.find((p) => p.token === longest.token && p.text === longest.text)!;
    assert.ok(last.right > box.right - 60 && last.bottom <= box.bottom + 0.5 && last.bottom > box.bottom - 30, `token ${last.token} is at x ${last.right}, y ${last.top}–${last.bottom}: not at the strip's right and bottom edges`);
    await panel.page.mouse.move((last.left + last.right) / 2, (last.top + last.bottom) / 2);
    const tip = panel.page.locator('.token-tooltip');
    await tip.waitFor({ state: 'visible' });
    assert.equal(await tip.getAttribute('data-index'), String(last.token));
    const r = await tip.evaluate((e) => {
      const b = e.getBoundingClientRect();
      return { left: b.left, top: b.top, right: b.right, bottom: b.bottom, width: document.documentElement.clientWidth, height: document.documentElement.clientHeight, overflow: e.scrollWidth - e.clientWidth };
    });
    assert.ok(r.left >= 0 && r.right <= r.width, `hover box x ${r.left}–${r.right} is not inside the panel's 0–${r.width}`);
    assert.ok(r.top >= 0 && r.bottom <= r.height, `hover box y ${r.top}–${r.bottom} is not inside the panel's 0–${r.height}`);
    assert.ok(r.overflow <= 0, `the hover box's text spills ${r.overflow} px out of it`);
    // Next to its token: above or below it, not somewhere else in the panel.
    assert.ok(r.bottom <= last.top || r.top >= last.bottom, 'the hover box covers its token');
    assert.deepEqual(panel.errors, []);
  });
});
