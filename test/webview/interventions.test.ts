/**
 * The Interventions view in Chromium on mamba1-tiny (tfjs cpu): a right-click on a token ablates
 * its write in the selected layer; the token strip's KL and Δloss and the next-token view's
 * intervened top-k change only from that token on, and equal the float64 reference run with the
 * same edits (layerEdits → referenceForward → interventionEffect, computed here in Node). A
 * knockout from the form, and a bad spec refused in one line that keeps the last effect. The
 * sweep's heatmap cells equal the float64 ablationSweep's, and the logit lens's the reference's
 * own lens (ForwardOptions.logitLens).
 */
import assert from 'node:assert/strict';
import { interventionEffect, type Effect } from '../../src/engine/analysis/effect';
import { ablationSweep } from '../../src/engine/analysis/sweep';
import { buildDump } from '../../src/engine/formats/dump';
import { encodeSafetensors } from '../../src/engine/formats/safetensors';
import { openTensorFile } from '../../src/engine/formats/tensorFile';
import { readInterventionInputs } from '../../src/engine/interventionInputs';
import { interventionInputsMessage } from '../../src/extension/messages';
import { NodeFileSource } from '../../src/node/files';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { editedModel } from '../../src/engine/interventionInputs';
import { describeIntervention, layerEdits, parseIntervention, type Intervention } from '../../src/engine/interventions';
import { loadModelFolder } from '../../src/engine/model/load';
import type { LanguageModel } from '../../src/engine/model/graph';
import { topK } from '../../src/engine/predictions';
import { referenceForward } from '../../src/engine/reference/forward';
import type { ViewSettings } from '../../src/protocol';
import { NodeFolderStore } from '../../src/node/files';
import { loadModelParams, runParams, TINY_MODEL } from './messages';
import { Panel } from './panel';
import { ROOT } from './server';

const SETTINGS: ViewSettings = { backend: 'cpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };
const TEXT = 'def total(items):\n    s = 0\n    for x in items:\n        s += x\n    return s\n\nprint(total([1, 2, 3]))\n';
/** The ablated token: mid-sample, so positions before it must stay unchanged. */
const S = 12;

describe('interventions view in Chromium (mamba1-tiny, tfjs cpu)', function () {
  let panel: Panel;
  let model: LanguageModel<'float64'>;
  let ids: Int32Array;
  let tokenizer: Awaited<ReturnType<typeof loadModelParams>>['tokenizer'];
  const dir = mkdtempSync(join(tmpdir(), 'ms-interventions-'));
  const open = async (path: string) => openTensorFile(await NodeFileSource.open(path));

  /** The float64 reference's effect of `interventions` (what they read from files read by the engine's reader) and its intervened logits. */
  function reference(interventions: Intervention[], inputs: Awaited<ReturnType<typeof readInterventionInputs>> = new Map()): { effect: Effect; logits: ReturnType<typeof referenceForward>['logits'] } {
    const clean = referenceForward(model, ids, { layers: [] });
    const run = referenceForward(model, ids, { layers: [], edits: layerEdits(interventions, ids.length, editedModel(model.config), inputs) });
    return { effect: interventionEffect(clean.logits!, run.logits!, ids), logits: run.logits };
  }

  /** The strip's per-position KL and Δloss, as the spans carry them. */
  function stripEffect(): Promise<{ kl: number[]; dloss: number[]; first: number[]; intervened: number[] }> {
    return panel.page.evaluate(() => {
      const spans = [...document.querySelectorAll<HTMLElement>('.view-tokens .token')];
      return {
        kl: spans.map((s) => Number(s.dataset.kl)),
        dloss: spans.filter((s) => s.dataset.dloss !== undefined).map((s) => Number(s.dataset.dloss)),
        first: spans.filter((s) => s.classList.contains('first-changed')).map((s) => Number(s.dataset.index)),
        intervened: spans.filter((s) => s.classList.contains('intervened')).map((s) => Number(s.dataset.index)),
      };
    });
  }

  /** The next-token view's clean and intervened lists after the selected token. */
  async function lists(): Promise<{ clean: { id: number; prob: number }[]; intervened: { id: number; prob: number }[] }> {
    // No named functions inside evaluate: tsx's __name helper does not exist in the page.
    const [clean, intervened] = await Promise.all(['.view-next .predictions:not(.intervened) li', '.view-next .predictions.intervened li'].map((sel) =>
      panel.page.$$eval(sel, (items) => items.map((li) => ({ id: Number((li as HTMLElement).dataset.id), prob: Number((li as HTMLElement).dataset.prob) })))));
    return { clean, intervened };
  }

  async function select(token: number): Promise<void> {
    await panel.page.click(`#token-${token}`);
    await panel.page.waitForFunction((t) => document.querySelector('.view-next .view-title')?.textContent?.startsWith(`After ${t} `), token);
  }


  function close(got: number, want: number, what: string): void {
    assert.ok(Math.abs(got - want) <= 2e-3 + 6e-4 * Math.abs(want), `${what}: panel ${got}, float64 ${want}`);
  }

  before(async () => {
    model = (await loadModelFolder(new NodeFolderStore(TINY_MODEL), 'float64')) as LanguageModel<'float64'>;
    panel = await Panel.open();
    await panel.notify('setSettings', SETTINGS);
    const loaded = await loadModelParams(TINY_MODEL, 'tiny');
    tokenizer = loaded.tokenizer;
    await panel.request('loadModel', loaded.params);
    const run = runParams('run-i', 'tiny', TEXT, tokenizer, { backend: 'cpu', memoryLimitMB: 1200 });
    ids = new Int32Array(run.ids.slice(0));
    assert.ok(ids.length > S + 10, `the sample has ${ids.length} tokens`);
    await panel.request('run', run);
    await panel.waitForView('tokens');
    await panel.page.click('vscode-tab-header[data-view="interventions"]');
    await panel.waitForView('interventions');
  });

  after(async () => {
    assert.deepEqual(panel?.errors ?? [], []);
    await panel?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs a spec whose file the fake host's picker gives (read in Node by the host's own reader), from the form. */
  async function runWithFile(intervention: Intervention, pick: { file: string; key?: string }, fill: Record<string, string>): Promise<void> {
    const kind = intervention.kind as 'steer' | 'patch-state';
    const spec = describeIntervention(intervention);
    const [input] = await interventionInputsMessage([intervention], ids.length, model.config, open);
    await panel.offerInterventionFiles(pick, { [spec]: input });
    await panel.page.selectOption('.view-interventions .intervention-kind', kind);
    for (const [field, value] of Object.entries(fill)) await panel.page.fill(`.view-interventions .intervention-${field}`, value);
    await panel.page.click('.view-interventions button[data-action="pick-file"]');
    await panel.page.waitForFunction((f) => document.querySelector('.view-interventions .intervention-file-name')?.textContent?.startsWith(f), pick.file.split('/').pop()!);
    await panel.page.click('.view-interventions button[data-action="run"]');
    await panel.page.waitForFunction((sp) => document.querySelector('.view-interventions .intervention-result')?.getAttribute('data-spec') === sp, spec, { timeout: 60_000 });
  }

  it('a right-click → “Ablate its write” in layer 1 colours the strip by KL from the ablated token on, equal to the float64 reference', async () => {
    await panel.page.keyboard.press('ArrowDown'); // layer 1
    await panel.page.click(`#token-${S}`, { button: 'right' });
    await panel.page.click('.intervention-menu button[data-kind="ablate-write"]');
    await panel.page.waitForFunction(() => document.querySelector('.view-tokens .token')?.hasAttribute('data-kl'), null, { timeout: 60_000 });
    const got = await stripEffect();
    const want = reference([{ kind: 'ablate-write', layer: 1, tokens: [S] }]).effect;
    assert.deepEqual(got.intervened, [S]);
    assert.deepEqual(got.first, [want.firstChanged]);
    assert.equal(want.firstChanged, S, 'the reference changes nothing before the ablated token');
    for (let t = 0; t < S; t++) assert.ok(got.kl[t] <= 1e-9, `KL at ${t} before the ablation: ${got.kl[t]}`);
    for (let t = S; t < ids.length; t++) close(got.kl[t], want.kl[t], `KL at ${t}`);
    for (let t = 0; t < ids.length - 1; t++) close(got.dloss[t], want.dLoss[t], `Δloss at ${t}`);
    assert.ok(Math.max(...got.kl) > 1e-4, 'the ablation moves the outputs');
    assert.match(await panel.page.locator('.view-interventions .intervention-first').textContent() ?? '', new RegExp(`^First change at token ${S} `));
    const description = (await panel.request('describe', null)).views.tokens;
    assert.ok(description.distinctColors > 3 && Math.abs(description.max - Math.max(...want.kl)) <= 2e-3 + 6e-4 * Math.max(...want.kl), `strip coloured by KL up to ${description.max}`);
  });

  it('the next-token view shows the intervened top-k beside the clean one: equal before the token, the reference’s after it', async () => {
    const { logits } = reference([{ kind: 'ablate-write', layer: 1, tokens: [S] }]);
    await select(S - 1);
    const before = await lists();
    assert.deepEqual(before.intervened.map((p) => p.id), before.clean.map((p) => p.id));
    before.intervened.forEach((p, i) => assert.ok(Math.abs(p.prob - before.clean[i].prob) <= 1e-7, `top ${i} before the ablation`));
    const t = S + 3;
    await select(t);
    const after = await lists();
    const want = topK(logits!, t, after.intervened.length);
    assert.deepEqual(after.intervened.map((p) => p.id), want.map((p) => p.id));
    after.intervened.forEach((p, i) => close(p.prob, want[i].prob, `intervened top ${i} after token ${t}`));
    assert.match(await panel.page.locator('.view-next .next-effect').textContent() ?? '', /^KL\(clean ‖ intervened\) /);
    const d = (await panel.request('describe', null)).views.next;
    assert.equal(d.shows, `intervened: ablate-write layer=1 tokens=${S}`);
  });

  it('a prediction clicked in the next-token view becomes the target: its probability before and after is the reference’s', async () => {
    const t = S + 3;
    const { clean } = await lists();
    const id = clean[2].id;
    await panel.page.click(`.view-next .predictions:not(.intervened) li[data-id="${id}"]`);
    await panel.page.click('vscode-tab-header[data-view="interventions"]');
    await panel.page.waitForFunction((want) => (document.querySelector('.view-interventions .intervention-target') as HTMLInputElement | null)?.value === want, `#${id}`);
    await panel.page.selectOption('.view-interventions .intervention-kind', 'ablate-write');
    await panel.page.fill('.view-interventions .intervention-layer', '1');
    await panel.page.fill('.view-interventions .intervention-tokens', String(S));
    await panel.page.click('.view-interventions button[data-action="run"]');
    await panel.page.waitForFunction(() => /target /.test(document.querySelector('.view-next .next-effect')?.textContent ?? ''), null, { timeout: 60_000 });
    const clean64 = referenceForward(model, ids, { layers: [] });
    const want = interventionEffect(clean64.logits!, reference([{ kind: 'ablate-write', layer: 1, tokens: [S] }]).logits!, ids, id).target!;
    const text = (await panel.page.locator('.view-next .next-effect').textContent()) ?? '';
    const [, before, after] = /target .* (\d+\.\d+) % → (\d+\.\d+) %/.exec(text) ?? [];
    assert.ok(Math.abs(Number(before) / 100 - want.clean[t]) <= 6e-4 && Math.abs(Number(after) / 100 - want.intervened[t]) <= 6e-4, `${text} vs float64 ${want.clean[t]} → ${want.intervened[t]}`);
    assert.match(await panel.page.locator('.view-interventions .intervention-target-change').textContent() ?? '', new RegExp(`^Target .* after token ${t}: `));
  });

  it('the strip switches to Δloss (signed, diverging) and back to the metric', async () => {
    await panel.page.selectOption('.view-tokens .strip-values', 'dloss');
    await panel.page.waitForFunction(() => /Δloss/.test(document.querySelector('.view-tokens .tokens')?.getAttribute('aria-label') ?? ''));
    const want = reference([{ kind: 'ablate-write', layer: 1, tokens: [S] }]).effect;
    const d = (await panel.request('describe', null)).views.tokens;
    close(d.min, Math.min(...want.dLoss), 'smallest Δloss coloured');
    close(d.max, Math.max(...want.dLoss), 'largest Δloss coloured');
    await panel.page.selectOption('.view-tokens .strip-values', 'metric');
    await panel.page.waitForFunction(() => /Δ \(mean over channels\) of layer 1/.test(document.querySelector('.view-tokens .tokens')?.getAttribute('aria-label') ?? ''));
  });

  it('a knockout from the form equals the reference’s; a bad spec is refused in one line and keeps the last effect', async () => {
    await panel.page.selectOption('.view-interventions .intervention-kind', 'knockout');
    await panel.page.fill('.view-interventions .intervention-layer', '0');
    await panel.page.fill('.view-interventions .intervention-from', '5');
    await panel.page.fill('.view-interventions .intervention-to', '9');
    await panel.page.click('.view-interventions button[data-action="run"]');
    await panel.page.waitForFunction(() => document.querySelector('.view-interventions .intervention-result')?.getAttribute('data-spec') === 'knockout layer=0 from=5 to=9', null, { timeout: 60_000 });
    const want = reference([{ kind: 'knockout', layer: 0, from: 5, to: 9 }]).effect;
    const got = await stripEffect();
    assert.equal(want.firstChanged, 9);
    assert.deepEqual(got.first, [9]);
    for (let t = 0; t < ids.length; t++) close(got.kl[t], want.kl[t], `knockout KL at ${t}`);

    await panel.page.fill('.view-interventions .intervention-to', '2');
    await panel.page.click('.view-interventions button[data-action="run"]');
    await panel.page.waitForFunction(() => (document.querySelector('.view-interventions .intervention-problem')?.textContent ?? '') !== '');
    const problem = await panel.page.locator('.view-interventions .intervention-problem').textContent();
    assert.match(problem ?? '', /to=2 comes before from=5/);
    assert.equal(await panel.page.locator('.view-interventions .intervention-result').getAttribute('data-spec'), 'knockout layer=0 from=5 to=9', 'the last effect stays');
  });

  it('the sweep over both layers × tokens 8–13 fills a heatmap whose cells are the float64 sweep’s (mean KL and mean Δloss)', async () => {
    await panel.page.click('vscode-tab-header[data-view="sweep"]');
    await panel.waitForView('sweep');
    await panel.page.fill('.view-sweep .sweep-tokens', '8:14');
    assert.match(await panel.page.locator('.view-sweep .sweep-estimate').textContent() ?? '', /^12 cells: at most about \d+ s \(13 forwards of \d+ ms/);
    await panel.page.click('.view-sweep button[data-action="sweep"]');
    await panel.page.waitForSelector('.view-sweep [aria-label*="12 of 12 cells"]', { timeout: 120_000 });
    await panel.page.waitForFunction(() => document.querySelector('.job-bar')?.hasAttribute('hidden'));
    const tokens = [8, 9, 10, 11, 12, 13];
    const want = ablationSweep(model, ids, { tokens });
    const kl = await panel.exportedNpy('sweep');
    assert.deepEqual([...kl.shape], [2, 6]);
    kl.data.forEach((v, k) => close(v, want.meanKl[k], `mean KL of layer ${Math.floor(k / 6)}, token ${tokens[k % 6]}`));
    await panel.page.selectOption('.view-sweep .sweep-values', 'dloss');
    const dloss = await panel.exportedNpy('sweep');
    dloss.data.forEach((v, k) => close(v, want.meanDLoss[k], `mean Δloss of layer ${Math.floor(k / 6)}, token ${tokens[k % 6]}`));
  });

  it('the logit lens: each layer’s next-token probability and rank, and its top-k, are the float64 reference’s lens', async () => {
    await panel.page.click('vscode-tab-header[data-view="lens"]');
    await panel.waitForView('lens');
    await panel.page.waitForFunction(() => /after each layer/.test(document.querySelector('.view-lens [aria-label^="logit lens:"]')?.getAttribute('aria-label') ?? ''), null, { timeout: 60_000 });
    assert.equal(await panel.page.locator('.view-lens .legend').first().textContent().then((t) => /non-finite/.test(t ?? '')), false, 'no NaN flagged');
    const ref = referenceForward(model, ids, { keep: [], logitLens: 10 });
    const L = ids.length;
    const prob = await panel.exportedNpy('lens');
    assert.deepEqual([...prob.shape], [2, L - 1], 'every position with a token after it');
    ref.layers.forEach(({ lens }, i) => {
      for (let t = 0; t < L - 1; t++) close(prob.data[i * (L - 1) + t], lens!.nextProb[t], `p(next) after layer ${i} at ${t}`);
    });
    await panel.page.selectOption('.view-lens .lens-values', 'rank');
    const rank = await panel.exportedNpy('lens');
    let same = 0;
    ref.layers.forEach(({ lens }, i) => {
      for (let t = 0; t < L - 1; t++) same += Number(rank.data[i * (L - 1) + t] === lens!.nextRank[t] + 1);
    });
    assert.ok(same >= 0.97 * 2 * (L - 1), `${same} of ${2 * (L - 1)} ranks equal the float64 ones (near-ties may swap in fp32)`);
    await select(S);
    const top = (await panel.page.locator('.view-lens .lens-top').textContent()) ?? '';
    const first = ref.layers[0].lens!;
    assert.ok(top.startsWith(`After layer 0, after ${S} `) || top.startsWith(`After layer 1, after ${S} `), top);
    const layer = top.startsWith('After layer 0') ? 0 : 1;
    const lens = layer === 0 ? first : ref.layers[1].lens!;
    const listed = [...top.matchAll(/(\d+\.\d+) %/g)].map((m) => Number(m[1]) / 100);
    assert.equal(listed.length, 10);
    listed.forEach((p, j) => assert.ok(Math.abs(p - lens.probs[S * 10 + j]) <= 1.5e-3, `top ${j} of layer ${layer} after ${S}: ${p} vs ${lens.probs[S * 10 + j]}`));
  });

  it('steers with a vector file the host’s picker gave (read by the host’s reader): the effect is the reference’s with that vector', async () => {
    // A space in the path: the spec syntax splits on it, the panel must not.
    const file = join(dir, 'steer vector.safetensors');
    const vector = Float32Array.from({ length: model.config.dModel }, (_, j) => Math.sin(j * 0.7));
    writeFileSync(file, encodeSafetensors([{ name: 'direction', tensor: { shape: [vector.length], data: vector } }]));
    const interventions: Intervention[] = [{ kind: 'steer', layer: 1, tokens: [20], vector: { file, key: 'direction' }, scale: 2 }];
    await runWithFile(interventions[0], { file, key: 'direction' }, { layer: '1', tokens: '20', scale: '2' });
    const want = reference(interventions, await readInterventionInputs(interventions, ids.length, model.config, open)).effect;
    const got = await stripEffect();
    assert.equal(want.firstChanged, 20);
    assert.deepEqual(got.first, [20]);
    for (let t = 0; t < ids.length; t++) close(got.kl[t], want.kl[t], `steered KL at ${t}`);
  });

  it('patches the state from another run’s dump (inspect --states-at): the effect is the reference’s with that patch', async () => {
    const other = tokenizer.encode('while True:\n    pass\n# a different sample of code\nx = [i for i in range(10)]\n').ids;
    const run = referenceForward(model, other, { statesAt: [15], layers: [0] });
    const { entries, metadata } = buildDump({ inputIds: Int32Array.from(other), pieces: Array.from(other, String), result: run, metadata: {} });
    const f32 = entries.map((e) => ({ name: e.name, tensor: e.tensor.data instanceof Float64Array ? { shape: e.tensor.shape, data: Float32Array.from(e.tensor.data) } : e.tensor }));
    const file = join(dir, 'patch.safetensors');
    writeFileSync(file, encodeSafetensors(f32, metadata));
    const interventions: Intervention[] = [{ kind: 'patch-state', layer: 0, token: 15, from: file }];
    await runWithFile(interventions[0], { file }, { layer: '0', token: '15' });
    const want = reference(interventions, await readInterventionInputs(interventions, ids.length, model.config, open)).effect;
    const got = await stripEffect();
    assert.ok(want.firstChanged !== null && want.firstChanged >= 15, `the reference changes from ${want.firstChanged}`);
    assert.deepEqual(got.first, [want.firstChanged]);
    for (let t = 0; t < ids.length; t++) close(got.kl[t], want.kl[t], `patched KL at ${t}`);
  });

  it('a sweep cancelled from the header stops, keeps the cells it did, and says so', async () => {
    await panel.page.click('vscode-tab-header[data-view="sweep"]');
    await panel.page.fill('.view-sweep .sweep-tokens', 'all');
    await panel.page.click('.view-sweep button[data-action="sweep"]');
    await panel.page.waitForSelector('.view-sweep [aria-label*="ablation sweep:"][aria-label*=" of "]');
    await panel.page.waitForFunction(() => /, [1-9]\d* of \d+ cells/.test(document.querySelector('.view-sweep [aria-label^="ablation sweep:"]')?.getAttribute('aria-label') ?? ''));
    await panel.page.click('.job-bar .job-cancel');
    await panel.page.waitForFunction(() => document.querySelector('.panel-header .status')?.textContent === 'sweep: cancelled');
    const label = (await panel.page.getAttribute('.view-sweep [aria-label^="ablation sweep:"]', 'aria-label')) ?? '';
    const [, done, total] = /, (\d+) of (\d+) cells/.exec(label)!.map(Number);
    assert.equal(total, 2 * ids.length);
    assert.ok(done >= 1 && done < total, `${done} of ${total} cells kept`);
    assert.equal(await panel.page.isHidden('.job-bar'), true);
  });

  it('Shift+F10 on the strip opens the menu at the selected token; ↑/↓ move in it, Escape closes it', async () => {
    await panel.page.click('#token-7');
    await panel.page.focus('.view-tokens .tokens');
    await panel.page.keyboard.press('Shift+F10');
    await panel.page.waitForSelector('.intervention-menu:not([hidden])');
    assert.match(await panel.page.locator('.intervention-menu-title').textContent() ?? '', /^Token 7 /);
    await panel.page.keyboard.press('ArrowDown');
    assert.equal(await panel.page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.kind), 'zero-state');
    await panel.page.keyboard.press('ArrowUp');
    await panel.page.keyboard.press('ArrowUp');
    assert.equal(await panel.page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.kind), 'patch-state', 'wraps around');
    await panel.page.keyboard.press('Escape');
    await panel.page.waitForSelector('.intervention-menu[hidden]', { state: 'attached' });
  });

  it('refuses an intervention whose two [L, V] logits do not fit beside the inspection, with the numbers', async () => {
    const long = runParams('run-small', 'tiny', TEXT.repeat(3), tokenizer, { backend: 'cpu', memoryLimitMB: 1 });
    await panel.request('run', long);
    await panel.page.click('vscode-tab-header[data-view="interventions"]');
    await panel.page.selectOption('.view-interventions .intervention-kind', 'ablate-write');
    await panel.page.fill('.view-interventions .intervention-tokens', '3');
    await panel.page.click('.view-interventions button[data-action="run"]');
    await panel.page.waitForFunction(() => (document.querySelector('.view-interventions .intervention-problem')?.textContent ?? '') !== '');
    const L = long.tokens.length;
    const problem = (await panel.page.locator('.view-interventions .intervention-problem').textContent()) ?? '';
    assert.match(problem, new RegExp(`^an intervention: needs the clean and the intervened next-token distributions, 2 × ${L} tokens × 1024 × 4 bytes = ${Math.ceil((8 * L * 1024) / 1e6)} MB, and \\d+ MB are left of mambaScope\\.runMemoryLimitMB \\(1 MB\\)`));
  });
});

describe('interventions on the native WebGPU engine in Chromium (mamba1-tiny, SwiftShader)', function () {
  let panel: Panel;
  let model: LanguageModel<'float64'>;
  let ids: Int32Array;

  before(async () => {
    model = (await loadModelFolder(new NodeFolderStore(TINY_MODEL), 'float64')) as LanguageModel<'float64'>;
    panel = await Panel.open();
    await panel.notify('setSettings', { ...SETTINGS, backend: 'webgpu' });
    const { params, tokenizer } = await loadModelParams(TINY_MODEL, 'tiny');
    await panel.request('loadModel', params);
    const run = runParams('run-g', 'tiny', TEXT, tokenizer, { backend: 'webgpu', memoryLimitMB: 1200 });
    ids = new Int32Array(run.ids.slice(0));
    await panel.request('run', run);
    assert.equal((await panel.request('describe', null)).engine, 'webgpu-native');
  });

  after(async () => {
    assert.deepEqual(panel?.errors ?? [], []);
    await panel?.close();
  });

  it('the sweep runs batched on the GPU (webgpuAblationSweep) and its cells are the float64 sweep’s', async () => {
    await panel.page.click('vscode-tab-header[data-view="sweep"]');
    await panel.waitForView('sweep');
    await panel.page.fill('.view-sweep .sweep-tokens', '8:14');
    await panel.page.click('.view-sweep button[data-action="sweep"]');
    await panel.page.waitForSelector('.view-sweep [aria-label*="12 of 12 cells (batched on the GPU)"]', { timeout: 120_000 });
    const want = ablationSweep(model, ids, { tokens: [8, 9, 10, 11, 12, 13] });
    const got = await panel.exportedNpy('sweep');
    got.data.forEach((v, k) => assert.ok(Math.abs(v - want.meanKl[k]) <= 2e-3 + 6e-4 * want.meanKl[k], `mean KL cell ${k}: GPU ${v}, float64 ${want.meanKl[k]}`));
  });

  it('the logit lens: the reference’s lens where the engine returns one, else one line saying it does not', async () => {
    await panel.page.click('vscode-tab-header[data-view="lens"]');
    await panel.page.waitForFunction(() => /after each layer/.test(document.querySelector('.view-lens [aria-label^="logit lens:"]')?.getAttribute('aria-label') ?? '') || (document.querySelector('.view-lens .intervention-problem')?.textContent ?? '') !== '', null, { timeout: 60_000 });
    const problem = (await panel.page.locator('.view-lens .intervention-problem').textContent()) ?? '';
    if (problem) {
      assert.equal(problem, 'the native WebGPU engine: returns no logit lens (ForwardOptions.logitLens) for layer 0: the tfjs backends have it (mambaScope.backend: webgl or wasm)');
      return;
    }
    const ref = referenceForward(model, ids, { keep: [], logitLens: 10 });
    const got = await panel.exportedNpy('lens');
    const T = ids.length - 1;
    ref.layers.forEach(({ lens }, i) => {
      for (let t = 0; t < T; t++) assert.ok(Math.abs(got.data[i * T + t] - lens!.nextProb[t]) <= 2e-3 + 6e-4 * lens!.nextProb[t], `p(next) after layer ${i} at ${t}`);
    });
  });
});

describe('ablate-path on a hybrid (Jamba) in Chromium (tfjs cpu)', function () {
  it('replaces layer 2’s attention output by its mean over positions; the effect is the float64 reference’s', async () => {
    const JAMBA = join(ROOT, 'test', 'fixtures', 'families', 'jamba');
    const panel = await Panel.open({ withoutWebGpu: true });
    try {
      await panel.notify('setSettings', SETTINGS);
      const { params, tokenizer } = await loadModelParams(JAMBA, 'jamba');
      await panel.request('loadModel', params);
      const run = runParams('jamba-i', 'jamba', TEXT, tokenizer, { backend: 'cpu', memoryLimitMB: 1200 });
      const ids = new Int32Array(run.ids.slice(0));
      await panel.request('run', run);
      await panel.page.click('vscode-tab-header[data-view="interventions"]');
      await panel.waitForView('interventions');
      await panel.page.selectOption('.view-interventions .intervention-kind', 'ablate-path');
      await panel.page.fill('.view-interventions .intervention-layer', '2');
      await panel.page.selectOption('.view-interventions select[aria-label="Path"]', 'attention');
      await panel.page.selectOption('.view-interventions select[aria-label="Replaced by"]', 'mean');
      await panel.page.click('.view-interventions button[data-action="run"]');
      const spec = 'ablate-path layer=2 path=attention mode=mean';
      await panel.page.waitForFunction((sp) => document.querySelector('.view-interventions .intervention-result')?.getAttribute('data-spec') === sp, spec, { timeout: 60_000 });
      const model = (await loadModelFolder(new NodeFolderStore(JAMBA), 'float64')) as LanguageModel<'float64'>;
      const clean = referenceForward(model, ids, { layers: [] });
      const ablated = referenceForward(model, ids, { layers: [], edits: layerEdits([parseIntervention(spec)], ids.length, editedModel(model.config)) });
      const want = interventionEffect(clean.logits!, ablated.logits!, ids);
      const kl = await panel.page.$$eval('.view-tokens .token', (spans) => spans.map((x) => Number((x as HTMLElement).dataset.kl)));
      assert.equal(kl.length, ids.length);
      kl.forEach((v, t) => assert.ok(Math.abs(v - want.kl[t]) <= 2e-3 + 6e-4 * want.kl[t], `KL at ${t}: panel ${v}, float64 ${want.kl[t]}`));
      assert.ok(Math.max(...want.kl) > 1e-4, 'the ablation moves the outputs');
      assert.deepEqual(panel.errors, []);
    } finally {
      await panel.close();
    }
  });
});

describe('the host’s intervene request on Mamba-2 (mamba2-tiny, tfjs cpu)', function () {
  it('scale-delta on two heads runs as the Interventions view would, and its KL is the float64 reference’s', async () => {
    const MAMBA2 = join(ROOT, 'test', 'fixtures', 'mamba2-tiny');
    const panel = await Panel.open({ withoutWebGpu: true });
    try {
      await panel.notify('setSettings', SETTINGS);
      const { params, tokenizer } = await loadModelParams(MAMBA2, 'm2');
      await panel.request('loadModel', params);
      const run = runParams('m2-run', 'm2', TEXT, tokenizer, { backend: 'cpu', memoryLimitMB: 1200 });
      const ids = new Int32Array(run.ids.slice(0));
      await panel.request('run', run);
      const spec = 'scale-delta layer=1 tokens=5:10 factor=4 channels=0,1';
      const summary = await panel.request('intervene', { runId: 'm2-run', interventions: [spec] });
      assert.ok(summary);
      assert.deepEqual(summary.specs, ['scale-delta layer=1 tokens=5,6,7,8,9 factor=4 channels=0,1'], 'as describeIntervention writes it');
      const model = (await loadModelFolder(new NodeFolderStore(MAMBA2), 'float64')) as LanguageModel<'float64'>;
      const clean = referenceForward(model, ids, { layers: [] });
      const scaled = referenceForward(model, ids, { layers: [], edits: layerEdits([parseIntervention(spec)], ids.length, editedModel(model.config)) });
      const want = interventionEffect(clean.logits!, scaled.logits!, ids);
      assert.equal(summary.firstChanged, want.firstChanged);
      assert.equal(want.firstChanged, 5);
      summary.kl.values.forEach((v, t) => assert.ok(Math.abs(v - want.kl[t]) <= 2e-3 + 6e-4 * want.kl[t], `KL at ${t}: panel ${v}, float64 ${want.kl[t]}`));
      await assert.rejects(panel.request('intervene', { runId: 'another-run', interventions: [spec] }), /run another-run is not the inspection the panel shows/);
      await assert.rejects(panel.request('intervene', { runId: 'm2-run', interventions: ['scale-delta layer=1 tokens=5 factor=2 channels=99'] }), /channel 99 is outside Δ's \d+ columns/);
      assert.deepEqual(panel.errors, []);
    } finally {
      await panel.close();
    }
  });
});

