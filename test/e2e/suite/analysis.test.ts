/**
 * Annotations and Compare Dumps in a real VS Code: an annotation made for the inspection is saved
 * under .mamba-scope/annotations/, drawn in the editor, and kept (as stale) when its text goes
 * away; an fp32 and a bf16 dump compared in the panel's Numerics view.
 */
import * as assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import * as vscode from 'vscode';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors';
import { MemorySource } from '../../../src/engine/io';
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
  it('fp32 against bf16: the Numerics view opens on the first divergent layer and draws its |a − b|', async () => {
    const a = await api();
    const fp32 = wsFile('mamba1-sample1.safetensors'), bf16 = wsFile('mamba1-sample1-bf16.safetensors');
    // Expected values straight from the two files: |a − b| of each layer's out_proj output, and
    // which layer first holds an element beyond mamba_ssm's bf16 tolerance (the run's dtype).
    const read = async (uri: vscode.Uri, name: string) => (await SafetensorsFile.open(new MemorySource(uri.fsPath, readFileSync(uri.fsPath)))).readFloat(name, 'float32');
    const beyond = async (layer: number) => {
      const [x, y] = await Promise.all([read(fp32, `layers.${layer}.hf_out`), read(bf16, `layers.${layer}.hf_out`)]);
      const err = x.data.map((v, i) => Math.abs(v - y.data[i]));
      return { min: Math.min(...err), max: Math.max(...err), diverges: err.some((e, i) => e > 5e-2 + 3e-2 * Math.abs(x.data[i])) };
    };
    const [layer0, layer1] = [await beyond(0), await beyond(1)];
    assert.deepEqual([layer0.diverges, layer1.diverges], [false, true], 'the fixture diverges first in layer 1');

    await vscode.commands.executeCommand('mambaScope.compareDumps', fp32, bf16);
    const view = await waitFor('the Numerics view to draw', async () => {
      const p = await a.describePanel().catch(() => undefined);
      return p?.views.numerics?.drawn ? p.views.numerics : undefined;
    }, 60_000);
    assert.equal(view.shows, 'layers.1.hf_out', 'opens on the first divergent layer');
    assert.ok(Math.abs(view.min - layer1.min) <= 1e-6 * layer1.max, `min |a − b| drawn ${view.min}, in the files ${layer1.min}`);
    assert.ok(Math.abs(view.max - layer1.max) <= 1e-6 * layer1.max, `max |a − b| drawn ${view.max}, in the files ${layer1.max}`);
    assert.ok(view.distinctColors > 8, `an error map, not a flat image (${view.distinctColors} colours)`);
  });
});
