// Drives a running code-server with Playwright + Debian's Chromium (npm run test:e2e starts it).
//   node test/e2e/driver.mjs suite   runs out/e2e/suite.js inside the real extension host
//                                    (extensionTestsPath; exit code via codeAutomationExit)
//   node test/e2e/driver.mjs ui      clicks through the workbench like a user (inspects, selects a token,
//                                    ablates its write from the strip's menu) and saves
//                                    screenshots to test-results/e2e/
// Env: CS_BASE (http://127.0.0.1:PORT), WS_DIR (workspace folder), EXT_DIR (the extension).
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { format } from 'node:util';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const { CS_BASE, WS_DIR, EXT_DIR } = process.env;
const ROOT = join(import.meta.dirname, '..', '..');
const SHOTS = join(ROOT, 'test-results', 'e2e');
const NOISE = /open-vsx\.org|authentication provider 'github'|marketplace|gallery|ENOTFOUND|Failed to fetch/i;
/** Workbench chatter that reaches codeAutomationLog along with the suite's output. */
const CHATTER = /^(Resolving connection|Resolved connection|Creating a socket|\[reconnection|Updating additional|\[Service Worker\]|\[AgentHost|\[AccountPolicyGate\]|Creation of workbench contribution)/;
const t0 = Date.now();
const ts = () => `+${((Date.now() - t0) / 1000).toFixed(1)}s`;

/** The workbench URL: payload is how the web workbench takes extensionDevelopmentPath/extensionTestsPath. */
function workbenchUrl(testsPath) {
  const payload = [['extensionDevelopmentPath', `vscode-remote://remote${EXT_DIR}`]];
  if (testsPath) payload.push(['extensionTestsPath', `vscode-remote://remote${testsPath}`]);
  return `${CS_BASE}/?folder=${encodeURIComponent(WS_DIR)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

async function launch() {
  const udd = join(process.env.RUN_DIR ?? '/tmp', 'chrome');
  const ctx = await chromium.launchPersistentContext(udd, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1600, height: 1000 },
    args: ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  // The browser console (the webviews' errors among them) is the only window into the panel's failures.
  page.on('console', (m) => {
    if ((m.type() === 'error' || m.type() === 'warning') && !NOISE.test(m.text()) && !CHATTER.test(m.text())) console.log(`[browser ${m.type()}] ${m.text().slice(0, 400)}`);
  });
  return { ctx, page };
}

async function runSuite() {
  const { ctx, page } = await launch();
  const done = new Promise((resolve) => page.exposeFunction('codeAutomationExit', (code) => resolve(code)));
  await page.exposeFunction('codeAutomationLog', (type, args) => {
    const line = format(...args);
    if (!NOISE.test(line) && !CHATTER.test(line)) console.log(type === 'error' ? `[exthost error] ${line}` : line);
  });
  await page.goto(workbenchUrl(join(ROOT, 'out', 'e2e', 'suite.js')));
  const code = await Promise.race([done, new Promise((r) => setTimeout(() => r('timeout after 15 min'), 15 * 60_000))]);
  console.log(`${ts()} extension-host suite exit code: ${code}`);
  await ctx.close();
  return code === 0;
}

/** The Mamba Scope webview's frame: the one whose body the extension's HTML marked with data-mode. */
async function panelFrame(page, mode, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const f of page.frames()) {
      if ((await f.evaluate((m) => document.body?.dataset.mode === m, mode).catch(() => false))) return f;
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`no Mamba Scope ${mode} webview after ${timeoutMs / 1000} s`);
}

/** Per visible canvas: size, distinct colours (sampled) and a pixel hash, read in the webview. */
function canvasDigests(frame) {
  return frame.evaluate(() =>
    [...document.querySelectorAll('canvas')]
      .filter((c) => c.width > 0 && c.height > 0 && c.getBoundingClientRect().width > 0)
      .map((c, i) => {
        const ctx = c.getContext('2d');
        const id = c.dataset.view ?? c.closest('[data-view]')?.getAttribute('data-view') ?? c.getAttribute('aria-label') ?? `canvas${i}`;
        if (!ctx) return { id, w: c.width, h: c.height, colors: -1, hash: 0 };
        const { data } = ctx.getImageData(0, 0, c.width, c.height);
        const colors = new Set();
        let hash = 0;
        const step = Math.max(1, Math.floor(data.length / 4 / 20000)) * 4;
        for (let p = 0; p < data.length; p += step) {
          const v = (data[p] << 16) | (data[p + 1] << 8) | data[p + 2];
          colors.add(v);
          hash = (Math.imul(hash, 31) + v) | 0;
        }
        return { id, w: c.width, h: c.height, colors: colors.size, hash };
      }),
  );
}

async function palette(page, title) {
  for (let attempt = 1; attempt <= 10; attempt++) {
    await page.keyboard.press('Escape');
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget .quick-input-box input');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    await input.fill(`>${title}`);
    const row = page.locator(`.quick-input-list .monaco-list-row[aria-label*="${title}"]`).first();
    if (await row.isVisible({ timeout: 3000 }).catch(() => false)) {
      await page.keyboard.press('Enter');
      return;
    }
    await page.waitForTimeout(1000);
  }
  throw new Error(`command "${title}" never appeared in the palette`);
}

async function runUi() {
  mkdirSync(SHOTS, { recursive: true });
  const { ctx, page } = await launch();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  let ok = false;
  try {
    await page.goto(workbenchUrl());
    await page.waitForSelector('.monaco-workbench .part.statusbar', { timeout: 120_000 });
    // The extension activates on startup and shows its status item: then its commands are registered.
    await page.locator('.statusbar-item', { hasText: 'mamba1-demo' }).first().waitFor({ timeout: 120_000 });
    const tWorkbench = Date.now() - t0;
    console.log(`${ts()} workbench up, extension active (${tWorkbench} ms)`);

    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+P');
    await page.locator('.quick-input-widget .quick-input-box input').fill('demo0.py');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'demo0.py' }).first().waitFor({ timeout: 20_000 });
    await page.keyboard.press('Enter');
    await page.locator('.tab', { hasText: 'demo0.py' }).first().waitFor({ timeout: 20_000 });
    await page.locator('.monaco-editor .view-lines').first().click();

    const tCommand = Date.now();
    await palette(page, 'Mamba Scope: Inspect File');
    const frame = await panelFrame(page, 'panel', 60_000);
    // The panel's Content-Security-Policy: a nonce for scripts and never 'unsafe-eval'.
    const csp = await frame.evaluate(() => document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content') ?? '');
    console.log(`${ts()} panel CSP: ${csp}`);
    if (!/script-src 'nonce-[^']+'/.test(csp) || /'unsafe-eval'/.test(csp) || !/default-src 'none'/.test(csp)) throw new Error(`weak CSP: ${csp}`);
    // The inspection is complete when the status item counts the tokens (after the run's reply).
    await page.locator('.statusbar-item', { hasText: /\d+ tokens/ }).first().waitFor({ timeout: 300_000 });
    const tDone = Date.now() - tCommand;
    // Real values drawn: the largest canvas (the tokens × channels heatmap) has many colours.
    const biggest = (ds) => ds.reduce((a, b) => (b.w * b.h > a.w * a.h ? b : a), { w: 0, h: 0, colors: 0 });
    let digests = [];
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await page.waitForTimeout(250)) {
      digests = await canvasDigests(frame).catch(() => []);
      if (biggest(digests).colors >= 16) break;
    }
    console.log(`${ts()} inspection done ${tDone} ms after the command; canvases:`, digests.map((d) => `${d.id} ${d.w}x${d.h} ${d.colors} colours`).join('; '));
    if (biggest(digests).colors < 16) throw new Error('the heatmap shows no data (its largest canvas has fewer than 16 colours)');
    // The editor tints the inspected tokens (decorations render as overlay divs with our colour).
    const tinted = () => page.evaluate(() => [...document.querySelectorAll('.monaco-editor .view-overlays div')].filter((d) => getComputedStyle(d).backgroundColor.startsWith('rgba(255, 140, 0')).length);
    const nTinted = await tinted();
    console.log(`${ts()} tinted token spans visible in the editor: ${nTinted}`);
    if (nTinted < 20) throw new Error(`the editor shows ${nTinted} tinted tokens`);
    await page.screenshot({ path: join(SHOTS, '01-inspected.png') });

    // Select a token in the panel: click one in the token strip (a listbox of options).
    const token = frame.locator('[role="listbox"] [role="option"]').nth(40);
    const tClick = Date.now();
    await token.click();
    let changed = [];
    while (Date.now() - tClick < 30_000) {
      const now = await canvasDigests(frame);
      changed = now.filter((d, i) => digests[i] && d.hash !== digests[i].hash).map((d) => d.id);
      if (changed.length >= 2) break;
      await page.waitForTimeout(100);
    }
    const tLinked = Date.now() - tClick;
    // The panel tells the host, which boxes the token in the editor: a round trip, so poll.
    const boxedCount = () => page.evaluate(() => [...document.querySelectorAll('.monaco-editor .view-overlays div, .monaco-editor .view-lines span')].filter((d) => getComputedStyle(d).borderTopStyle === 'solid' && getComputedStyle(d).borderTopWidth === '1px').length);
    let boxed = 0;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && boxed === 0; await page.waitForTimeout(100)) boxed = await boxedCount();
    console.log(`${ts()} token 40 selected: ${changed.length} canvases redrew within ${tLinked} ms (${changed.join(', ')}); boxed in the editor: ${boxed}`);
    await page.screenshot({ path: join(SHOTS, '02-token-selected.png') });
    if (changed.length < 2) throw new Error('selecting a token did not update the linked views');
    if (boxed < 1) throw new Error('the selected token is not highlighted in the editor');
    const panelShot = await frame.frameElement();
    await panelShot.screenshot({ path: join(SHOTS, '03-panel.png') });

    // Ablate token 40's write from the token strip's right-click menu: the next-token view lists
    // the intervened run's top-k beside the clean one, and the strip marks the first change.
    const cleanTop = await frame.locator('.view-next .predictions li').allTextContents();
    const tAblate = Date.now();
    await token.click({ button: 'right' });
    await frame.locator('.intervention-menu button[data-kind="ablate-write"]').click();
    await frame.locator('.view-next .predictions.intervened li').first().waitFor({ timeout: 120_000 });
    const intervenedTop = await frame.locator('.view-next .predictions.intervened li').allTextContents();
    const first = await frame.locator('.view-tokens .token.first-changed').getAttribute('data-index');
    console.log(`${ts()} ablate-write at token 40 from the strip's menu: ${Date.now() - tAblate} ms; first change at token ${first}; intervened top-3 ${intervenedTop.slice(0, 3).join(' | ')} (clean ${cleanTop.slice(0, 3).join(' | ')})`);
    await page.screenshot({ path: join(SHOTS, '04-ablated.png') });
    if (first !== '40') throw new Error(`the ablation at token 40 changed the outputs first at token ${first}`);
    if (intervenedTop.join() === cleanTop.join()) throw new Error('the ablation did not change the next-token view');
    ok = true;
  } catch (e) {
    console.log(`${ts()} UI test failed: ${e.message}`);
    await page.screenshot({ path: join(SHOTS, 'failure.png') }).catch(() => undefined);
  } finally {
    if (errors.length) console.log('page errors:', errors.filter((e) => !NOISE.test(e)).slice(0, 10));
    await ctx.close();
  }
  console.log(ok ? 'UI TEST PASSED' : 'UI TEST FAILED');
  return ok;
}

const mode = process.argv[2];
const ok = mode === 'suite' ? await runSuite() : mode === 'ui' ? await runUi() : (console.error('usage: driver.mjs suite|ui'), false);
process.exit(ok ? 0 : 1);
