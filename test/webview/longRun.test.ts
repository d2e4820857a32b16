/**
 * A long sample in the panel (issue 13), in Chromium on wasm: mamba1-tiny over 5000 tokens of the
 * long fixture's text (three chunks: 2048, 2048, 904). The overview's series, exported as .npy, against
 * the float64 reference forward over the whole sample computed here in Node: the next-token loss
 * and mean Δ at every position, the near-reset fraction from the reference's Δ and A, and ‖h_t‖
 * at positions where the reference recorded h (either side of the chunk boundaries). Then the
 * window switch: the editor's cursor on token 4500 moves the window there, recomputed from the
 * checkpoint at 2048, and the main heatmap's Δ over the window is the reference's rows there at
 * full resolution; the decorations get that window's summary. The forgetting detector runs on that
 * window: Retention on the reference's Δ rows there, at the sample's positions through the host's
 * annotation session; the views that rerun the whole sample say they do not.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { layerDecay, Retention } from '../../src/engine/analysis/retention';
import { scanOf } from '../../src/engine/layers/kind';
import { isLanguageModel, type LanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { nextTokenLoss } from '../../src/engine/predictions';
import { referenceForward } from '../../src/engine/reference/forward';
import { normalizedError } from '../../src/engine/tensor';
import { AnnotationSession } from '../../src/extension/annotationSession';
import { AnnotationFileStore } from '../../src/node/annotationFileStore';
import { FULL_RESOLUTION_TOKENS, type AnnotationEdit, type ViewSettings } from '../../src/protocol';
import { NodeFolderStore } from '../../src/node/files';
import { loadModelParams, runParams, TINY_MODEL } from './messages';
import { Panel } from './panel';
import { ROOT } from './server';

const SETTINGS: ViewSettings = { backend: 'wasm', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };
const TOKENS = 5000;
/** States recorded by the reference: in the first chunk, either side of both chunk boundaries, the last token. */
const STATES_AT = [100, 2047, 2048, 4095, 4096, 4999];

describe('a long sample in Chromium (mamba1-tiny, wasm, 5000 tokens)', function () {
  let panel: Panel;
  let ids: Int32Array;
  let ref: ReturnType<typeof referenceForward>;
  let model: LanguageModel<'float64'>;
  let text: string;
  let offsets: [number, number][];

  before(async function () {
    this.timeout(180_000);
    const { params, tokenizer } = await loadModelParams(TINY_MODEL, 'tiny');
    text = readFileSync(join(ROOT, 'test', 'fixtures', 'long', 'text-32k.py'), 'utf8');
    const run = runParams('long-run', 'tiny', text, tokenizer, { backend: 'wasm', memoryLimitMB: 1200 });
    ids = new Int32Array(run.ids).slice(0, TOKENS);
    offsets = run.offsets.slice(0, TOKENS).map(([a, b]) => [a, b]);
    const m = await loadModelFolder(new NodeFolderStore(TINY_MODEL), 'float64');
    assert.ok(isLanguageModel(m));
    model = m;
    ref = referenceForward(model, ids, { keep: ['delta', 'h'], statesAt: STATES_AT });
    panel = await Panel.open({ withoutWebGpu: true });
    await panel.notify('setSettings', { ...SETTINGS, wasmPath: panel.server.wasmPath });
    await panel.request('loadModel', params);
    const summary = await panel.request('run', { ...run, ids: ids.slice().buffer, tokens: run.tokens.slice(0, TOKENS), offsets: run.offsets.slice(0, TOKENS) });
    assert.deepEqual(summary.window, [0, FULL_RESOLUTION_TOKENS], 'the decorations get the first window');
    assert.equal(summary.perToken.delta!.shape[1], FULL_RESOLUTION_TOKENS);
    await panel.waitForView('overview');
  });

  after(async () => {
    await panel?.close();
  });


  it('draws the overview of every position: loss, mean Δ, near-reset fraction and ‖h_t‖ of the float64 reference', async () => {
    const d = await panel.request('describe', null);
    assert.deepEqual(d.long, { tokens: TOKENS, window: [0, FULL_RESOLUTION_TOKENS], fullResolution: true });
    assert.ok(d.views.overview.drawn && d.views.overview.distinctColors > 10, JSON.stringify(d.views.overview));
    const { shape, data } = await panel.exportedNpy('overview');
    assert.deepEqual(shape, [TOKENS, 4]);
    const column = (k: number) => Float64Array.from({ length: TOKENS }, (_, t) => data[t * 4 + k]);
    const delta = ref.layers[0].tensors.delta!;
    const D = delta.shape[1];
    const wantLoss = Float64Array.from({ length: TOKENS - 1 }, (_, t) => nextTokenLoss(ref.logits!, t, ids[t + 1]));
    const loss = column(0);
    assert.ok(Number.isNaN(loss[TOKENS - 1]), 'the last token has no next one');
    const lossError = normalizedError(loss.subarray(0, TOKENS - 1), wantLoss);
    assert.ok(lossError <= 1e-4, `loss: normalized error ${lossError}`);
    const wantMean = Float64Array.from({ length: TOKENS }, (_, t) => delta.data.subarray(t * D, (t + 1) * D).reduce((s, v) => s + v, 0) / D);
    const meanError = normalizedError(column(1), wantMean);
    assert.ok(meanError <= 1e-4, `mean Δ: normalized error ${meanError}`);
    // The near-reset fraction counts channels with meanₙ exp(Δ·A) < τ: fp32 may flip a channel within rounding of τ, never more than a few.
    const aLog = scanOf(model.layers[0]).aLog;
    const N = aLog.shape[1];
    const resets = column(2);
    let flipped = 0;
    for (let t = 0; t < TOKENS; t++) {
      let below = 0;
      for (let c = 0; c < D; c++) {
        let f = 0;
        for (let n = 0; n < N; n++) f += Math.exp(delta.data[t * D + c] * -Math.exp(aLog.data[c * N + n]));
        if (f / N < SETTINGS.resetThreshold) below++;
      }
      flipped += Math.abs(resets[t] * D - below);
    }
    assert.ok(flipped <= 3, `${flipped} channel-steps counted differently from the float64 forget factor`);
    const h = ref.layers[0].tensors.h!;
    const norms = column(3);
    STATES_AT.forEach((t, i) => {
      const s = h.data.subarray(i * D * N, (i + 1) * D * N);
      const want = Math.sqrt(s.reduce((a, v) => a + v * v, 0));
      assert.ok(Math.abs(norms[t] - want) <= 1e-4 * want, `‖h_${t}‖ ${norms[t]}, float64 ${want}`);
    });
    assert.deepEqual(panel.errors, []);
  });

  it('moves the window to a token chosen in the editor and shows its Δ at full resolution, recomputed from the checkpoint', async () => {
    await panel.notify('selectToken', { runId: 'long-run', token: 4500 });
    // The window keeps its width, centred on the token as far as the sample's end allows: [2952, 5000).
    await panel.page.waitForFunction(() => document.querySelector('.view-overview .view-title')?.textContent?.includes('window 2952–4999 (full resolution)'), null, { timeout: 60_000 });
    await panel.waitForView('heatmap');
    const d = await panel.request('describe', null);
    assert.deepEqual(d.long, { tokens: TOKENS, window: [2952, 5000], fullResolution: true });
    assert.equal(d.selection?.token, 4500);
    // Layer 1's Δ reads layer 0's output, so it holds only if the state carried into the window was right.
    for (const layer of [0, 1]) {
      if (layer > 0) {
        await panel.page.keyboard.press('ArrowDown');
        await panel.page.waitForFunction((l) => document.querySelector('.view-heatmap .view-title')?.textContent?.includes(`layer ${l}`), layer);
        await panel.waitForView('heatmap');
      }
      const { shape, data } = await panel.exportedNpy('heatmap');
      const delta = ref.layers[layer].tensors.delta!;
      const D = delta.shape[1];
      assert.deepEqual(shape, [FULL_RESOLUTION_TOKENS, D]);
      const e = normalizedError(data, delta.data.subarray(2952 * D, 5000 * D));
      assert.ok(e <= 1e-4, `layer ${layer}: window Δ normalized error ${e}`);
    }
    const w = await panel.waitForNotification('windowSummary');
    assert.deepEqual(w.window, [2952, 5000]);
    assert.equal(w.perToken.delta.shape[1], FULL_RESOLUTION_TOKENS);
    assert.deepEqual(panel.errors, []);
  });

  it('runs the forgetting detector on the window in view, in the sample’s positions: Retention on the float64 reference’s Δ there', async () => {
    // The window is 2952–4999 and layer 1 selected (the test before).
    await panel.page.click('vscode-tab-header[data-view="annotations"]');
    await panel.page.waitForFunction(() => (window as any).fakeHost.notifications.some((n: any) => n.method === 'annotationEdit' && n.params.op === 'detect' && n.params.from === 2952));
    const detect = (await panel.notifications('annotationEdit')).map((n) => n.params as AnnotationEdit).filter((e) => e.op === 'detect' && e.from === 2952).pop()!;
    assert.ok(detect.op === 'detect');
    assert.deepEqual([detect.layer, detect.threshold, detect.forgottenAt.length], [1, SETTINGS.resetThreshold, FULL_RESOLUTION_TOKENS]);
    // R(s→t) needs only Δ between s and t: the window's rows of the whole sample's float64 Δ.
    const delta = ref.layers[1].tensors.delta!;
    const D = delta.shape[1];
    const local = Retention.fromLayer({ shape: [FULL_RESOLUTION_TOKENS, D], data: delta.data.subarray(2952 * D, 5000 * D) }, layerDecay(model, 1).A).forgottenAt(SETTINGS.resetThreshold);
    const want = Array.from(local, (t) => (t < 0 ? -1 : t + 2952));
    const forgotten = want.filter((t) => t >= 0).length;
    assert.ok(forgotten > 100, `the float64 detector forgets ${forgotten} of the window's tokens; the test needs many`);
    const differ = detect.forgottenAt.filter((t, i) => t !== want[i]).length;
    assert.ok(differ <= Math.ceil(0.01 * FULL_RESOLUTION_TOKENS), `${differ} of ${FULL_RESOLUTION_TOKENS} tokens differ from the float64 detector`);
    // The host's session over the whole sample turns them into suggestions at the sample's tokens.
    const dir = mkdtempSync(join(tmpdir(), 'ms-long-annot-'));
    try {
      const session = await AnnotationSession.open(new AnnotationFileStore(dir), { runId: 'long-run', path: join(dir, 'text-32k.py'), text, offsets, model: null, tokenizerSha256: null });
      session.apply(detect);
      const open = session.forPanel().suggestions;
      assert.ok(open.length > 0 && open.every((s) => s.token >= 2952 && s.token < 5000 && s.forgottenAt === detect.forgottenAt[s.token - 2952]), `suggestions at the window’s tokens, forgotten where the panel said: ${JSON.stringify(open.slice(0, 3))}`);
      await panel.notify('setAnnotations', session.forPanel());
      await panel.page.waitForFunction((n) => document.querySelectorAll('.view-annotations .suggestion').length === n, open.length);
      const first = await panel.page.textContent('.view-annotations .suggestion .suggestion-what');
      assert.ok(first?.startsWith(`${open[0].token} ‘`) && first.endsWith(`forgotten at token ${open[0].forgottenAt} in layer 1`), first ?? '');
      assert.match((await panel.page.textContent('.view-annotations .suggestion-head')) ?? '', /in tokens 2952–4999 of 5000: \d+ open; checking by ablation needs a sample of at most 2048 tokens$/);
      assert.equal(await panel.page.locator('.view-annotations .suggestion button[data-action="check"]').count(), 0, 'no check by ablation on a long run');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.deepEqual(panel.errors, []);
  });

  it('shows each channel\'s effective memory over the whole sample, not the window: the float64 reference\'s mean Δ over all 5000 tokens, solved for τ', async () => {
    // Layer 1 is selected (the tests before); the window is 2952–4999, the memory is the sample's.
    await panel.page.click('vscode-tab-header[data-view="memory"]');
    await panel.waitForView('memory');
    const { shape, data } = await panel.exportedNpy('memory');
    const delta = ref.layers[1].tensors.delta!;
    const D = delta.shape[1];
    assert.deepEqual(shape, [D, 3]);
    const aLog = scanOf(model.layers[1]).aLog;
    const N = aLog.shape[1];
    const horizon = 2048;
    let global = 0;
    for (let c = 0; c < D; c++) {
      let sum = 0;
      for (let t = 0; t < TOKENS; t++) sum += delta.data[t * D + c];
      const mean = sum / TOKENS;
      assert.ok(Math.abs(data[c * 3 + 1] - mean) <= 1e-5 * mean, `channel ${c}: mean Δ ${data[c * 3 + 1]}, float64 ${mean}`);
      // The panel's M_d, put back into the definition with the float64 mean: retention τ there.
      const M = data[c * 3];
      let R = 0;
      for (let n = 0; n < N; n++) R += Math.exp(-Math.exp(aLog.data[c * N + n]) * M * mean);
      assert.ok(Math.abs(R / N - SETTINGS.resetThreshold) <= 1e-4, `channel ${c}: retention ${R / N} after its ${M} tokens`);
      assert.equal(data[c * 3 + 2], M >= horizon ? 1 : 0);
      if (M >= horizon) global++;
    }
    const title = (await panel.page.textContent('.view-memory .view-title')) ?? '';
    assert.ok(title.startsWith(`Channel memory · layer 1: ${global} of ${D} global (≥ ${horizon} tokens), ${D - global} local;`) && title.endsWith(`over ${TOKENS} tokens)`), title);
    assert.ok(global > 0 && global < D, `the horizon splits layer 1's channels (${global} of ${D} global)`);
    assert.deepEqual(panel.errors, []);
  });

  it('says in one line, in each view that reruns the whole sample, that it works on samples of up to 2048 tokens', async () => {
    for (const [view, what] of [['interventions', 'Interventions'], ['sweep', 'Sweeps'], ['lens', 'The logit lens and its runs']] as const) {
      await panel.page.click(`vscode-tab-header[data-view="${view}"]`);
      await panel.page.waitForSelector(`.view-${view}[data-state="unavailable"]`);
      const text = await panel.page.textContent(`.view-${view} .view-message`);
      assert.equal(text, `${what} work on samples of up to ${FULL_RESOLUTION_TOKENS} tokens, and this one has ${TOKENS} (the views show its window at full resolution): inspect a selection of the text`);
    }
    assert.deepEqual(panel.errors, []);
  });
});
