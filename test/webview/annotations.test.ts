/**
 * The annotations view in Chromium, with the host's real AnnotationSession playing the host in
 * Node: the panel marks a token span with a custom label and note, the detector's result for the
 * selected layer matches Retention run in Node on the float64 reference's Δ, a suggestion checked
 * by ablation gets the float64 reference's KL, suggestions are accepted one by one (the checked one
 * saving its evidence through save and load) and rejected in bulk, a note is edited in place, and
 * a stale annotation is listed but not underlined.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { interventionEffect } from '../../src/engine/analysis/effect';
import { layerDecay, Retention } from '../../src/engine/analysis/retention';
import { editedModel } from '../../src/engine/interventionInputs';
import { layerEdits } from '../../src/engine/interventions';
import type { LanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { AnnotationSession } from '../../src/extension/annotationSession';
import { AnnotationFileStore } from '../../src/node/annotationFileStore';
import type { AnnotationEdit, ViewSettings } from '../../src/protocol';
import { NodeFolderStore } from '../../src/node/files';
import { loadModelParams, runParams, TINY_MODEL } from './messages';
import { Panel } from './panel';

/** ε of the causal check, a setting the panel is sent (not the default). */
const EPSILON = 0.02;
const SETTINGS: ViewSettings = { backend: 'cpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.3, causalEpsilon: EPSILON };
/** At τ = 0.3 layer 0 forgets about half of this sample's 41 tokens (none at 0.05: it is short). */
const TAU = 0.3;
const TEXT = 'import os\n\ndef read(path):\n    with open(path) as f:\n        return f.read()\n\nprint(read(os.devnull))\n';

describe('annotations view in Chromium', function () {
  let panel: Panel;
  let session: AnnotationSession;
  let dir: string;
  let seen = 0;
  let offsets: [number, number][];
  let ids: Int32Array;

  /** Plays the host: applies the panel's new edits, saves, and sends back what the panel shows. */
  async function pump(): Promise<AnnotationEdit[]> {
    const all = await panel.notifications('annotationEdit');
    const fresh = all.slice(seen).map((n) => n.params as AnnotationEdit);
    seen = all.length;
    for (const e of fresh) session.apply(e);
    await session.save();
    await panel.notify('setAnnotations', session.forPanel());
    return fresh;
  }

  async function waitForEdit(op: AnnotationEdit['op']): Promise<void> {
    await panel.page.waitForFunction(([o, n]) => (window as any).fakeHost.notifications.filter((x: any) => x.method === 'annotationEdit').slice(n).some((x: any) => x.params.op === o), [op, seen] as const, { timeout: 30_000 });
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ms-annot-view-'));
    panel = await Panel.open();
    await panel.notify('setSettings', SETTINGS);
    const { params, tokenizer } = await loadModelParams(TINY_MODEL, 'tiny');
    await panel.request('loadModel', params);
    const run = runParams('run-a', 'tiny', TEXT, tokenizer, { backend: 'cpu', memoryLimitMB: 1200 });
    offsets = run.offsets.map(([s, e]) => [s, e]);
    ids = new Int32Array(run.ids.slice(0));
    session = await AnnotationSession.open(new AnnotationFileStore(dir), { runId: 'run-a', path: join(dir, 'sample.py'), text: TEXT, offsets, model: null, tokenizerSha256: null });
    await panel.request('run', run);
    await panel.page.click('vscode-tab-header[data-view="annotations"]');
    await panel.waitForView('annotations');
  });

  after(async () => {
    assert.deepEqual(panel?.errors ?? [], []);
    await panel?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends the selected layer’s forgotten tokens, matching Retention on the float64 reference', async () => {
    await waitForEdit('detect');
    const [detect] = (await pump()).filter((e) => e.op === 'detect');
    assert.ok(detect.op === 'detect');
    assert.deepEqual([detect.layer, detect.threshold], [0, TAU]);
    const model = await loadModelFolder(new NodeFolderStore(TINY_MODEL), 'float64');
    const ref = referenceForward(model, ids, {});
    const delta = ref.layers[0].tensors.delta!;
    const want = Retention.fromLayer(delta, layerDecay(model, 0).A).forgottenAt(TAU);
    assert.equal(detect.forgottenAt.length, offsets.length);
    const differ = detect.forgottenAt.filter((t, s) => t !== want[s]).length;
    assert.ok(differ <= Math.ceil(0.05 * offsets.length), `${differ} of ${offsets.length} tokens differ from the float64 detector`);
    const open = session.forPanel().suggestions;
    await panel.page.waitForFunction((n) => document.querySelectorAll('.view-annotations .suggestion').length === n, open.length);
    assert.ok(open.length >= 2, `the detector suggests ${open.length} tokens; the test needs two`);
  });

  let checked: { token: number; meanKl: number; forgottenAt: number };

  it('checks a suggestion by ablation: its mean KL from forgottenAt on is the float64 reference’s, held against ε', async () => {
    const first = session.forPanel().suggestions[0];
    const item = `.view-annotations .suggestion[data-token="${first.token}"]`;
    assert.equal(await panel.page.locator(`${item} .causal-check`).textContent(), 'not checked by ablation');
    await panel.page.click(`${item} button[data-action="check"]`);
    await panel.page.waitForSelector(`${item} .causal-check[data-kl]`, { timeout: 60_000 });
    const got = Number(await panel.page.getAttribute(`${item} .causal-check`, 'data-kl'));
    const model = (await loadModelFolder(new NodeFolderStore(TINY_MODEL), 'float64')) as LanguageModel<'float64'>;
    const clean = referenceForward(model, ids, { layers: [] });
    const ablated = referenceForward(model, ids, { layers: [], edits: layerEdits([{ kind: 'ablate-write', layer: 0, tokens: [first.token] }], ids.length, editedModel(model.config)) });
    const kl = interventionEffect(clean.logits!, ablated.logits!, ids).kl.subarray(first.forgottenAt);
    const want = kl.reduce((a, b) => a + b, 0) / kl.length;
    assert.ok(Math.abs(got - want) <= 2e-3 + 6e-4 * want, `mean KL: panel ${got}, float64 ${want}`);
    assert.equal(await panel.page.getAttribute(`${item} .causal-check`, 'data-causal'), String(want < EPSILON));
    assert.match(await panel.page.locator(`${item} .causal-check`).textContent() ?? '', new RegExp(`from token ${first.forgottenAt} on, ${want < EPSILON ? '<' : '≥'} ε 0\\.02: ${want < EPSILON ? 'causally forgotten' : 'still used'}$`));
    checked = { token: first.token, meanKl: got, forgottenAt: first.forgottenAt };
  });

  it('accepts one suggestion, then rejects the rest in bulk', async () => {
    const first = session.forPanel().suggestions[0];
    await panel.page.click(`.view-annotations .suggestion[data-token="${first.token}"] button[data-action="accept"]`);
    await waitForEdit('accept');
    const [accept] = await pump();
    assert.deepEqual(accept.op === 'accept' && accept.suggestions, [{ layer: 0, token: checked.token, causal: { meanKl: checked.meanKl, epsilon: EPSILON } }], 'the checked suggestion is accepted with its check');
    // Its evidence is in the file on disk, and comes back when the file is read again.
    const reopened = await AnnotationSession.open(new AnnotationFileStore(dir), { runId: 'run-a', path: join(dir, 'sample.py'), text: TEXT, offsets, model: null, tokenizerSha256: null });
    const saved = reopened.file.annotations.find((a) => a.tokenStart === checked.token)!;
    assert.deepEqual([saved.forgottenAt, saved.causalKl, saved.causalEpsilon, saved.threshold], [checked.forgottenAt, checked.meanKl, EPSILON, TAU]);
    await panel.page.waitForFunction(() => /ablated: mean KL/.test(document.querySelector('.view-annotations .annotation .annotation-evidence')?.textContent ?? ''));
    await panel.page.click('.view-annotations button[data-action="reject-all"]');
    await waitForEdit('reject');
    const [reject] = await pump();
    assert.ok(reject.op === 'reject' && reject.suggestions.length >= 1 && !reject.suggestions.some((s) => s.token === first.token));
    await panel.page.waitForFunction(() => document.querySelectorAll('.view-annotations .suggestion').length === 0);
    assert.equal(await panel.page.isHidden('.view-annotations .suggestion-bulk'), true);
    const items = await panel.page.locator('.view-annotations .annotation .annotation-what').allTextContents();
    assert.equal(items.length, 1);
    assert.match(items[0], new RegExp(`^forgotten · token ${first.token} .* · layer 0$`));
  });

  it('marks a token span with a custom label and a note (shown as text, not HTML), underlined in the strip', async () => {
    await panel.page.click('#token-3');
    await panel.page.fill('.view-annotations input[aria-label="Last token"]', '5');
    await panel.page.selectOption('.view-annotations select.annotation-label', 'custom');
    await panel.page.fill('.view-annotations input.annotation-custom', 'file handle');
    await panel.page.fill('.view-annotations textarea.annotation-note', '<b>kept</b> until the end');
    await panel.page.click('.view-annotations button.annotation-add');
    await waitForEdit('add');
    const [add] = await pump();
    assert.ok(add.op === 'add');
    assert.deepEqual([add.tokens, add.label, add.note, add.layer], [[3, 6], 'file handle', '<b>kept</b> until the end', 0]);
    await panel.page.waitForFunction(() => document.querySelectorAll('.view-annotations .annotation').length === 2);
    assert.equal(await panel.page.locator('.view-annotations .annotation b').count(), 0);
    assert.ok((await panel.page.locator('.view-annotations .annotation-note-text').allTextContents()).includes('<b>kept</b> until the end'));
    for (const t of [3, 4, 5]) assert.match((await panel.page.getAttribute(`#token-${t}`, 'class')) ?? '', /annotated/, `token ${t}`);
  });

  it('edits an annotation’s note in place (update, same id)', async () => {
    const item = panel.page.locator('.view-annotations .annotation', { hasText: 'file handle' });
    const id = await item.getAttribute('data-id');
    await item.locator('button[data-action="edit"]').click();
    assert.equal(await panel.page.inputValue('.view-annotations input.annotation-custom'), 'file handle');
    await panel.page.fill('.view-annotations textarea.annotation-note', 'closed by the with block');
    await panel.page.click('.view-annotations button.annotation-add');
    await waitForEdit('update');
    const [update] = await pump();
    assert.deepEqual(update, { op: 'update', runId: 'run-a', id, label: 'file handle', note: 'closed by the with block' });
    await panel.page.waitForFunction(() => [...document.querySelectorAll('.view-annotations .annotation-note-text')].some((n) => n.textContent === 'closed by the with block'));
    assert.equal(await panel.page.locator('.view-annotations .annotation').count(), 2);
  });

  it('lists an annotation the text change made stale, without underlining it', async () => {
    const span = TEXT.slice(offsets[3][0], offsets[5][1]);
    const changed = TEXT.replace(span, 'X'.repeat(span.length));
    session.textChanged(changed, offsets);
    await panel.notify('setAnnotations', session.forPanel());
    await panel.page.waitForFunction(() => document.querySelectorAll('.view-annotations .annotation.stale').length === 1);
    assert.match(await panel.page.locator('.view-annotations .annotation.stale .annotation-what').textContent() ?? '', /^file handle · [^]* stale/);
    for (const t of [3, 4, 5]) assert.doesNotMatch((await panel.page.getAttribute(`#token-${t}`, 'class')) ?? '', /annotated/, `token ${t}`);
  });
});
