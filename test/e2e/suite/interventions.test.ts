/**
 * An intervention started from the panel in a real VS Code: "Intervene…" ablates a token's write
 * in layer 1 of the bundled model; the panel's next-token view changes to the intervened run's
 * top-k, and the effect it measured (KL at every position) equals the float64 reference run with
 * the same edits here in the extension host: nothing changes before the token.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { interventionEffect } from '../../../src/engine/analysis/effect';
import { editedModel } from '../../../src/engine/interventionInputs';
import { layerEdits, parseIntervention } from '../../../src/engine/interventions';
import { loadModelFolder } from '../../../src/engine/model/load';
import type { LanguageModel } from '../../../src/engine/model/graph';
import { topK } from '../../../src/engine/predictions';
import { referenceForward } from '../../../src/engine/reference/forward';
import { MambaTokenizer } from '../../../src/engine/tokenizer';
import { NodeFolderStore } from '../../../src/node/files';
import { fromTensorMessage, type InterventionSummary } from '../../../src/protocol';
import { api, EXTENSION_ID, waitFor, wsFile } from './helpers';

const S = 40;
const SPEC = `ablate-write layer=1 tokens=${S}`;

describe('An intervention from the panel (real VS Code)', function () {
  it(`${SPEC} on demo0.py changes the next-token view from token ${S} on, as the float64 reference does`, async () => {
    const a = await api();
    const sample = wsFile('demo0.py');
    const result = await a.inspect(sample);
    const t = S + 2;
    a.selectToken(t, 1);
    const clean = await waitFor('the next-token view after the selected token', async () => {
      const d = await a.describePanel();
      return d.selection?.token === t && d.views.next?.drawn ? d.views.next : undefined;
    });
    assert.equal(clean.shows, undefined, 'before the intervention the view lists the clean run');

    const summary = (await vscode.commands.executeCommand('mambaScope.intervene', SPEC)) as InterventionSummary | null;
    assert.ok(summary, 'the panel ran the intervention');
    assert.equal(summary.runId, result.runId);
    const after = await waitFor('the next-token view to show the intervened run', async () => {
      const d = await a.describePanel();
      return d.views.next?.shows ? d.views.next : undefined;
    });
    assert.equal(after.shows, `intervened: ${SPEC}`);

    // The float64 reference with the same edits, on the same tokens.
    const modelDir = vscode.Uri.joinPath(vscode.extensions.getExtension(EXTENSION_ID)!.extensionUri, 'assets', 'mamba1-demo').fsPath;
    const model = (await loadModelFolder(new NodeFolderStore(modelDir), 'float64')) as LanguageModel<'float64'>;
    const tok = MambaTokenizer.fromJson(new TextDecoder().decode(await vscode.workspace.fs.readFile(vscode.Uri.file(`${modelDir}/tokenizer.json`))), 'tokenizer.json');
    const ids = tok.encode((await vscode.workspace.openTextDocument(sample)).getText()).ids.slice(0, result.tokens);
    const edits = layerEdits([parseIntervention(SPEC)], ids.length, editedModel(model.config));
    const cleanRun = referenceForward(model, ids, { layers: [] });
    const ablated = referenceForward(model, ids, { layers: [], edits });
    const want = interventionEffect(cleanRun.logits!, ablated.logits!, ids);
    assert.equal(want.firstChanged, S);
    assert.equal(summary.firstChanged, S, 'the panel saw the first change at the ablated token');
    const kl = fromTensorMessage(summary.kl, 'kl').data;
    for (let p = 0; p < S; p++) assert.ok(kl[p] <= 1e-9, `KL ${kl[p]} at ${p}, before the ablated token`);
    for (let p = S; p < ids.length; p++) assert.ok(Math.abs(kl[p] - want.kl[p]) <= 2e-3 + 6e-4 * want.kl[p], `KL at ${p}: panel ${kl[p]}, float64 ${want.kl[p]}`);

    // The view lists the intervened top-k at the selected token: its probabilities are the reference's.
    const top = topK(ablated.logits!, t, 10).map((p) => p.prob);
    assert.ok(Math.abs(after.max - top[0]) <= 2e-3 + 6e-4 * top[0] && Math.abs(after.min - top[9]) <= 2e-3 + 6e-4 * top[9], `intervened top-10 [${after.min}, ${after.max}], float64 [${top[9]}, ${top[0]}]`);
    assert.ok(Math.abs(after.max - clean.max) > 1e-6 || Math.abs(after.min - clean.min) > 1e-6, 'the next-token view changed');
  });
});
