/**
 * Annotations and Compare Dumps in a real VS Code: an annotation made for the inspection is saved
 * under .mamba-scope/annotations/, drawn in the editor, and kept (as stale) when its text goes
 * away; two dumps open in the panel's Numerics view.
 */
import * as assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import * as vscode from 'vscode';
import { api, waitFor, wsFile } from './helpers';

describe('Annotations on an inspected sample (real VS Code)', function () {
  it('are saved in the workspace, drawn in the editor, and kept as stale when their text is edited away', async () => {
    const a = await api();
    const sample = wsFile('demo1.py');
    const editor = await vscode.window.showTextDocument(sample);
    await a.inspect(sample);
    await a.annotate({ op: 'add', tokens: [2, 5], layer: 1, threshold: null, label: 'forgotten', note: '<b>not html</b>' });
    const stats = await waitFor('the annotation to be saved and drawn', () => {
      const s = a.annotationStats();
      return s.file && existsSync(s.file) && s.decorated === 1 ? s : undefined;
    });
    assert.match(stats.file!, /\.mamba-scope\/annotations\//);
    const saved = JSON.parse(readFileSync(stats.file!, 'utf8'));
    assert.equal(saved.annotations.length, 1);
    assert.match(saved.tokenizer?.sha256 ?? '', /^[0-9a-f]{64}$/, 'the tokenizer.json hash is recorded');
    assert.match(saved.model?.configSha256 ?? '', /^[0-9a-f]{64}$/, 'the config.json hash is recorded');
    const { start, end, text, label, note, layer, tokenStart, tokenEnd } = saved.annotations[0];
    assert.deepEqual({ label, note, layer, tokenStart, tokenEnd }, { label: 'forgotten', note: '<b>not html</b>', layer: 1, tokenStart: 2, tokenEnd: 5 });
    assert.ok(end > start);
    assert.equal(editor.document.getText().slice(start, end), text, 'the saved span is the annotated text');

    // Replace the annotated text: it cannot be re-anchored, so it is kept, marked stale, not drawn.
    await editor.edit((e) => e.replace(new vscode.Range(editor.document.positionAt(start), editor.document.positionAt(end)), '\u00a7'.repeat(3)));
    await waitFor('the annotation to turn stale', () => (a.annotationStats().stale === 1 && a.annotationStats().decorated === 0 ? true : undefined));
    const after = JSON.parse(readFileSync(stats.file!, 'utf8'));
    assert.equal(after.annotations.length, 1, 'never dropped');
    assert.equal(after.annotations[0].stale, true);
    await vscode.commands.executeCommand('workbench.action.files.revert');
  });
});

describe('Compare Dumps (real VS Code)', function () {
  it('opens the comparison in the panel: the Numerics view draws the error map', async () => {
    const a = await api();
    const dump = wsFile('mamba1-sample1.safetensors');
    await vscode.commands.executeCommand('mambaScope.compareDumps', dump, dump);
    const d = await waitFor('the Numerics view to draw', async () => {
      const p = await a.describePanel().catch(() => undefined);
      return p?.views.numerics?.drawn ? p : undefined;
    }, 60_000);
    assert.ok(d.views.numerics.drawn, JSON.stringify(d.views));
  });
});
