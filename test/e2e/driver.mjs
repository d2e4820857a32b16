// Drives a running code-server with Playwright + Debian's Chromium (npm run test:e2e starts it).
//   node test/e2e/driver.mjs suite   runs out/e2e/suite.js inside the real extension host
//                                    (extensionTestsPath; exit code via codeAutomationExit)
//   node test/e2e/driver.mjs ui      clicks through the workbench like a user and saves
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
  return { ctx, page: ctx.pages()[0] ?? (await ctx.newPage()) };
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
    // Real values drawn: several canvases, each with many colours.
    let digests = [];
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline) {
      digests = await canvasDigests(frame).catch(() => []);
      if (digests.filter((d) => d.colors >= 16).length >= 2) break;
      await page.waitForTimeout(500);
    }
    const tDrawn = Date.now() - tCommand;
    console.log(`${ts()} panel drew ${digests.length} canvases in ${tDrawn} ms after the command:`, digests.map((d) => `${d.id} ${d.w}x${d.h} ${d.colors} colours`).join('; '));
    if (digests.filter((d) => d.colors >= 16).length < 2) throw new Error('the panel did not draw real values (fewer than 2 canvases with 16+ colours)');
    const decorated = await page.locator('.monaco-editor .view-overlays [class*="ced-"]').count();
    console.log(`${ts()} editor decoration spans in view: ${decorated}`);
    await page.screenshot({ path: join(SHOTS, '01-inspected.png') });

    // Select a token in the panel: click one in the token strip (a listbox of options), else a heatmap cell.
    const token = frame.locator('[role="listbox"] [role="option"]').nth(40);
    const tClick = Date.now();
    if (await token.count()) await token.click();
    else {
      const big = digests.reduce((a, b) => (b.w * b.h > a.w * a.h ? b : a));
      const el = frame.locator('canvas').nth(digests.indexOf(big));
      const box = await el.boundingBox();
      await page.mouse.click(box.x + box.width * 0.4, box.y + box.height * 0.5);
    }
    let changed = [];
    while (Date.now() - tClick < 30_000) {
      const now = await canvasDigests(frame);
      changed = now.filter((d, i) => digests[i] && d.hash !== digests[i].hash).map((d) => d.id);
      if (changed.length >= 2) break;
      await page.waitForTimeout(200);
    }
    console.log(`${ts()} after selecting a token, ${changed.length} views redrew within ${Date.now() - tClick} ms: ${changed.join(', ')}`);
    await page.screenshot({ path: join(SHOTS, '02-token-selected.png') });
    if (changed.length < 2) throw new Error('selecting a token did not update the linked views');
    const panelShot = await frame.frameElement();
    await panelShot.screenshot({ path: join(SHOTS, '03-panel.png') });
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
