/**
 * The host's annotation session without VS Code: the panel's edits land in
 * .mamba-scope/annotations/, suggestions are offered until accepted or rejected (one or in bulk,
 * and rejections persist), text changes re-anchor or mark stale without dropping anything, and
 * export/import round-trips.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TokenOffsets } from '../../src/engine/annotations';
import { AnnotationSession, type AnnotatedSample } from '../../src/extension/annotationSession';
import { AnnotationFileStore } from '../../src/node/annotationFileStore';

/** Words as tokens: enough to check token ↔ character bookkeeping. */
function words(text: string): TokenOffsets {
  return [...text.matchAll(/\S+/g)].map((m) => [m.index!, m.index! + m[0].length] as const);
}

const TEXT = 'def alpha(x):\n    return beta(x) + gamma\n';

describe('host annotation session', () => {
  let dir: string;
  let store: AnnotationFileStore;
  const sample = (text = TEXT, runId = 'run-1'): AnnotatedSample => ({ runId, path: join(dir, 'a.py'), text, offsets: words(text), model: { id: 'tiny', configSha256: 'c'.repeat(64) }, tokenizerSha256: 'd'.repeat(64) });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ms-annot-'));
    store = new AnnotationFileStore(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('saves a token-span annotation where the store keeps it, and a new window reads it back', async () => {
    const s = await AnnotationSession.open(store, sample());
    s.apply({ op: 'add', runId: 'run-1', tokens: [2, 4], layer: 1, threshold: 0.05, label: 'retained', note: 'call <b>kept</b>' });
    await s.save();
    const onDisk = JSON.parse(readFileSync(store.fileFor(join(dir, 'a.py')), 'utf8'));
    assert.equal(onDisk.annotations.length, 1);
    assert.deepEqual([onDisk.annotations[0].text, onDisk.annotations[0].label, onDisk.annotations[0].note], ['return beta(x)', 'retained', 'call <b>kept</b>']);
    const other = await AnnotationSession.open(store, sample(TEXT, 'run-2'));
    const shown = other.forPanel().annotations;
    assert.deepEqual(shown.map((a) => [a.runId, a.tokens, a.layer, a.stale]), [['run-2', [2, 4], 1, false]]);
  });

  it('offers the detector’s suggestions until accepted or rejected, one or in bulk; rejections persist', async () => {
    const s = await AnnotationSession.open(store, sample());
    s.apply({ op: 'detect', runId: 'run-1', layer: 0, threshold: 0.05, forgottenAt: [3, -1, 4, 5, -1, -1] });
    assert.deepEqual(s.forPanel().suggestions, [{ layer: 0, token: 0, forgottenAt: 3 }, { layer: 0, token: 2, forgottenAt: 4 }, { layer: 0, token: 3, forgottenAt: 5 }]);
    s.apply({ op: 'accept', runId: 'run-1', suggestions: [{ layer: 0, token: 2 }] });
    const accepted = s.forPanel().annotations;
    assert.deepEqual(accepted.map((a) => [a.label, a.note, a.tokens]), [['forgotten', 'forgotten at token 4', [2, 3]]]);
    s.apply({ op: 'reject', runId: 'run-1', suggestions: [{ layer: 0, token: 0 }, { layer: 0, token: 3 }] });
    assert.deepEqual(s.forPanel().suggestions, []);
    await s.save();
    const again = await AnnotationSession.open(store, sample(TEXT, 'run-2'));
    again.apply({ op: 'detect', runId: 'run-2', layer: 0, threshold: 0.05, forgottenAt: [3, -1, 4, 5, -1, -1] });
    assert.deepEqual(again.forPanel().suggestions, [], 'rejected and accepted suggestions are not offered again');
    assert.throws(() => again.apply({ op: 'accept', runId: 'run-2', suggestions: [{ layer: 1, token: 0 }] }), /no open suggestion for token 0 in layer 1/);
    assert.throws(() => again.apply({ op: 'remove', runId: 'run-1', ids: [] }), /not the current run run-2/);
  });

  it('re-anchors on a text change, keeps what it cannot find as stale, and saves both', async () => {
    const s = await AnnotationSession.open(store, sample());
    s.apply({ op: 'add', runId: 'run-1', tokens: [1, 2], layer: null, threshold: null, label: 'note', note: 'a' });
    s.apply({ op: 'add', runId: 'run-1', tokens: [5, 6], layer: null, threshold: null, label: 'note', note: 'b' });
    const moved = `# header\n${TEXT}`;
    assert.deepEqual(s.textChanged(moved, words(moved)), []);
    assert.deepEqual(s.forPanel().annotations.map((a) => [a.text, a.tokens, a.stale]), [['alpha(x):', [3, 4], false], ['gamma', [7, 8], false]]);
    const cut = moved.replace('gamma', 'delta');
    assert.equal(s.textChanged(cut, words(cut)).length, 1);
    await s.save();
    const reread = (await store.read(join(dir, 'a.py')))!;
    assert.deepEqual(reread.annotations.map((a) => [a.text, a.stale]), [['alpha(x):', false], ['gamma', true]]);
  });

  it('exports JSON, JSONL and CSV that import into another sample’s session', async () => {
    const s = await AnnotationSession.open(store, sample());
    s.apply({ op: 'add', runId: 'run-1', tokens: [0, 2], layer: 0, threshold: 0.05, label: 'custom, "quoted"', note: 'line1\nline2' });
    for (const format of ['json', 'jsonl', 'csv'] as const) {
      const text = s.exportAs(format);
      const other = await AnnotationSession.open(store, { ...sample(), path: join(dir, `copy-${format}.py`) });
      other.importFrom(text, format, `export.${format}`);
      assert.deepEqual(other.forPanel().annotations.map((a) => [a.label, a.note, a.tokens, a.text]), [['custom, "quoted"', 'line1\nline2', [0, 2], 'def alpha(x):']], format);
    }
  });
});
