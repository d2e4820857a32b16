/**
 * (c) The panel's memory at mamba-130m × 2048 tokens (issue 7: the webview stays under 2 GB), of a
 * model folder sent as the host sends it (bigCheckpoint.ts: the 2.8b streamed at 512 tokens), and
 * of a long run (issue 13: mamba1-tiny at 131,072 tokens, --long-panel): its overview, then the
 * window moved to the last token.
 * The real dist/webview.js runs in Chromium through the browser-test harness: the random-weight
 * 130m-shaped model is loaded, a 2048-token run goes through the forward and every view draws.
 * Figures are the renderer process's resident memory from /proc (Linux): the peak of each phase
 * (VmHWM, reset between phases through clear_refs) and the level after a forced GC.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { openCheckpoint } from '../src/engine/formats/checkpoint';
import { readConfig, type LanguageModelConfig } from '../src/engine/model/config';
import { weightMessage, weightsMessage } from '../src/extension/messages';
import { NodeFolderStore } from '../src/node/files';
import { FULL_RESOLUTION_TOKENS, type RunParams } from '../src/protocol';
import type { FakeHost } from '../test/webview/harness/fakeHost';
import { CHROMIUM, Panel } from '../test/webview/panel';
import { MAMBA_130M } from './randomModel';
import type { Row } from './report';

export interface MemoryBenchOptions {
  readonly tokens: number;
  readonly backend: 'wasm' | 'cpu' | 'webgpu';
  /**
   * A model folder, sent as the extension host sends it (streamed from disk a layer at a time when
   * its float32 weights pass the panel's budget); default: the random mamba-130m built in the page.
   */
  readonly model?: string;
  /** The rows' section (default 'memory'). */
  readonly section?: string;
}

/** The views a researcher goes through after a run, in tab order. */
const VIEWS = ['heatmap', 'gates', 'state', 'attention', 'layers', 'next', 'annotations'];

const MIB = 2 ** 20;

function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(field + ':'));
  if (!line) throw new Error(`/proc/${pid}/status has no ${field}`);
  return (Number.parseInt(line.slice(field.length + 1), 10) * 1024) / MIB;
}

/** Why this machine cannot run the memory section, or null. */
export function unavailable(): string | null {
  if (process.platform !== 'linux') return 'it reads /proc (Linux only)';
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM}`;
  return null;
}

export async function runWebviewMemoryBench(opts: MemoryBenchOptions, log: (s: string) => void): Promise<Row[]> {
  const panel = await Panel.open({ extraArgs: ['--js-flags=--expose-gc'] });
  try {
    const cdp = await panel.browser.newBrowserCDPSession();
    const { processInfo } = (await cdp.send('SystemInfo.getProcessInfo')) as { processInfo: { type: string; id: number }[] };
    const renderers = processInfo.filter((p) => p.type === 'renderer').map((p) => p.id);
    // The page's renderer is the one that grows: the harness page is the only page.
    const rss = () => Math.max(...renderers.map((pid) => procStatus(pid, 'VmRSS')));
    const peak = () => Math.max(...renderers.map((pid) => procStatus(pid, 'VmHWM')));
    const resetPeak = () => renderers.forEach((pid) => writeFileSync(`/proc/${pid}/clear_refs`, '5'));
    // Chromium frees ArrayBuffers' memory after the collection that finds them dead, not during
    // it: collect, wait, collect again.
    const settled = async () => {
      const gc = () => panel.page.evaluate(() => (globalThis as unknown as { gc(): void }).gc());
      await gc();
      await new Promise((r) => setTimeout(r, 1500));
      await gc();
      return rss();
    };
    /** The panel's own account: kept internals, tfjs tensors, wasm heap. */
    const breakdown = async () => {
      const { memory: m } = await panel.request('describe', null);
      const mib = (b: number | null) => (b === null ? 'n/a' : `${(b / MIB).toFixed(0)} MiB`);
      return `kept internals ${mib(m.keptBytes)}, tfjs tensors ${mib(m.backendBytes)}, wasm heap ${mib(m.wasmHeapBytes)}`;
    };
    const config = opts.model ? ((await readConfig(new NodeFolderStore(opts.model))) as LanguageModelConfig) : MAMBA_130M;
    const shape = `${config.nLayer}×${config.dModel}, L=${opts.tokens}`;
    const rows: Row[] = [];
    const row = (name: string, mib: number, ms: number, note?: string) => {
      rows.push({ section: opts.section ?? 'memory', name, backend: opts.backend, shape, ms, mib, note });
      log(`${name}: ${mib.toFixed(0)} MiB${note ? ` (${note})` : ''}`);
    };

    await panel.notify('setSettings', { backend: opts.backend, colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05, wasmPath: panel.server.wasmPath });
    row('empty panel', await settled(), 0);

    const modelId = opts.model ? 'folder' : 'random-130m';
    resetPeak();
    let start = Date.now();
    if (opts.model) {
      log(`sending ${opts.model} as the host does`);
      const checkpoint = await openCheckpoint(new NodeFolderStore(opts.model));
      const files = { id: modelId, label: opts.model, config, tokenizer: { tokenText: (id: number) => `t${id}` }, checkpoint };
      const params = await weightsMessage(files, new AbortController().signal, () => undefined);
      log(params.streamed ? `streamed: the backbone now, ${params.streamed.length} layer tensors on request` : 'every weight at once');
      panel.server.serveWeights((name) => weightMessage(checkpoint, name));
      await panel.request('loadModel', params);
      row('loadModel: peak', peak(), Date.now() - start, params.streamed ? 'the backbone from the host, and its upload' : 'the weights from the host, and their upload');
    } else {
      log('building the random-weight mamba-130m-shaped model in the page and loading it');
      await panel.page.evaluate((c) => (window as unknown as { fakeHost: FakeHost }).fakeHost.loadRandomModel('random-130m', c), MAMBA_130M);
      row('loadModel: peak', peak(), Date.now() - start, 'building the weights message in the page, and the upload');
    }
    row('loadModel: after GC', await settled(), 0, await breakdown());

    const V = config.vocabSize;
    const ids = Int32Array.from({ length: opts.tokens }, (_, i) => (i * 7919 + 13) % V);
    const run: RunParams = {
      runId: 'memory-bench', modelId, sampleName: 'memory-bench', ids: ids.buffer as ArrayBuffer,
      tokens: Array.from(ids, (id) => `t${id}`), offsets: Array.from(ids, (_, i) => [i, i + 1] as const), settings: { backend: opts.backend, memoryLimitMB: 1200 },
    };
    resetPeak();
    start = Date.now();
    const summary = await panel.request('run', run);
    const long = opts.tokens > FULL_RESOLUTION_TOKENS;
    // A long run draws the overview of the whole sample and the first window's views.
    await panel.waitForView(long ? 'overview' : 'heatmap', 1_800_000);
    const forwardMs = Date.now() - start;
    row(long ? 'run in chunks: peak (the overview drawn)' : 'run: peak (forward and first view)', peak(), forwardMs, summary.note);
    row('run: after GC', await settled(), 0, await breakdown());
    if (long) {
      // The editor's cursor on the last token: the window moves there, recomputed from its checkpoint.
      resetPeak();
      start = Date.now();
      await panel.notify('selectToken', { runId: run.runId, token: opts.tokens - 1 });
      const last = `window ${opts.tokens - FULL_RESOLUTION_TOKENS}–${opts.tokens - 1} (full resolution)`;
      await panel.page.waitForFunction((t) => document.querySelector('.view-overview .view-title')?.textContent?.includes(t), last, { timeout: 1_800_000 });
      await panel.waitForView('heatmap', 1_800_000);
      row('the last window at full resolution: peak', peak(), Date.now() - start, 'from the checkpoint before it');
      if (panel.errors.length) throw new Error(`the panel reported errors:\n${panel.errors.join('\n')}`);
      return rows;
    }

    resetPeak();
    start = Date.now();
    // The last token: the state and attention views work up to the selected one.
    await panel.notify('selectToken', { runId: run.runId, token: opts.tokens - 1 });
    for (const view of VIEWS) {
      const header = panel.page.locator(`vscode-tab-header[data-view="${view}"]`);
      if (await header.count()) await header.click();
      await panel.waitForView(view, 1_800_000);
    }
    row('every view drawn: peak', peak(), Date.now() - start, VIEWS.join(', '));
    row('every view drawn: after GC', await settled(), 0, await breakdown());
    if (panel.errors.length) throw new Error(`the panel reported errors:\n${panel.errors.join('\n')}`);
    return rows;
  } finally {
    await panel.close();
  }
}
