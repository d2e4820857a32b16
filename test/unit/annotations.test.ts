import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import {
  acceptSuggestions, addAnnotation, deleteAnnotations, emptyAnnotationFile, exportAnnotations, formatAnnotationFile, importAnnotations, importInto,
  ANNOTATION_FIELDS, ANNOTATION_VERSION, mergeAnnotationFiles, NewerVersionError, parseAnnotationFile, parseCsv, pendingSuggestions, reanchor, rejectSuggestions, sha256Hex, spanOfChars,
  spanOfTokens, suggestionsFromForgotten, tokensCovering, updateAnnotation, type Annotation, type AnnotationFile, type EditContext, type TokenOffsets,
} from '../../src/engine/annotations';
import { InputError } from '../../src/engine/errors';
import { MambaTokenizer } from '../../src/engine/tokenizer';

const TOKENIZER = path.join(__dirname, '..', 'fixtures', 'mamba1-tiny', 'tokenizer.json');

/** A deterministic clock (one millisecond per call) and id source. */
function context(startMs = Date.parse('2024-05-01T10:00:00.000Z'), prefix = 'id'): EditContext & { tick: (ms: number) => void } {
  let t = startMs, n = 0;
  return { now: () => new Date(t++).toISOString(), newId: () => `${prefix}-${n++}`, tick: (ms) => (t += ms) };
}

/** One token per whitespace-separated word (and per run of spaces): enough to test indices. */
function words(text: string): TokenOffsets {
  const out: [number, number][] = [];
  for (const m of text.matchAll(/\s+|\S+/g)) out.push([m.index!, m.index! + m[0].length]);
  return out;
}

const TEXT = 'alpha beta gamma delta\nbeta epsilon zeta\n';

function fileFor(text: string): AnnotationFile {
  return emptyAnnotationFile({ path: 'x.py', sha256: sha256Hex(text), length: text.length }, { id: 'm', configSha256: sha256Hex('{}') }, { sha256: sha256Hex('tok') });
}

function annotate(file: AnnotationFile, text: string, word: string, occurrence: number, ctx: EditContext, label = 'forgotten'): { file: AnnotationFile; annotation: Annotation } {
  let at = -1;
  for (let k = 0; k <= occurrence; k++) at = text.indexOf(word, at + 1);
  assert.ok(at >= 0, word);
  return addAnnotation(file, { span: spanOfChars(text, words(text), at, at + word.length), layer: 1, threshold: 0.05, label, note: `about ${word}` }, ctx);
}

describe('annotations: schema and edits', () => {
  it('sha256Hex equals node:crypto for strings and bytes of every padding length', () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 255);
      assert.equal(sha256Hex(bytes), createHash('sha256').update(bytes).digest('hex'), `${n} bytes`);
    }
    assert.equal(sha256Hex('héllo ✓'), createHash('sha256').update('héllo ✓').digest('hex'));
  });

  it('adds, updates and deletes; a write always gets a newer updatedAt even when the clock is behind', () => {
    const ctx = context();
    let { file, annotation } = annotate(fileFor(TEXT), TEXT, 'gamma', 0, ctx);
    assert.deepEqual([annotation.start, annotation.end, annotation.text, annotation.tokenStart, annotation.tokenEnd], [11, 16, 'gamma', 4, 5]);
    const behind: EditContext = { now: () => '2000-01-01T00:00:00.000Z' };
    file = updateAnnotation(file, annotation.id, { note: 'changed', label: 'retained' }, behind);
    const updated = file.annotations[0];
    assert.equal(updated.note, 'changed');
    assert.ok(Date.parse(updated.updatedAt) > Date.parse(annotation.updatedAt));
    file = deleteAnnotations(file, [annotation.id], behind);
    assert.equal(file.annotations.length, 0);
    assert.ok(Date.parse(file.tombstones[0].deletedAt) > Date.parse(updated.updatedAt));
    assert.throws(() => updateAnnotation(file, annotation.id, { note: 'x' }), /no annotation with id/);
    assert.throws(() => annotate(fileFor(TEXT), TEXT, 'beta', 0, ctx, ''), InputError);
  });

  it('formats and parses back the same file; rejects bad files with the reason and newer versions as unsupported', () => {
    const ctx = context();
    let file = annotate(fileFor(TEXT), TEXT, 'beta', 1, ctx).file;
    file = annotate(file, TEXT, 'alpha', 0, ctx, 'my "label", with commas').file;
    file = deleteAnnotations(file, [file.annotations[0].id], ctx);
    const text = formatAnnotationFile(file);
    assert.equal(formatAnnotationFile(parseAnnotationFile(text, 'f.json')), text);
    const json = JSON.parse(text);
    assert.throws(() => parseAnnotationFile('{', 'f.json'), /f\.json: is not valid JSON/);
    assert.throws(() => parseAnnotationFile(JSON.stringify({ ...json, version: ANNOTATION_VERSION + 1 }), 'f.json'), (e: unknown) => e instanceof NewerVersionError && e.kind === 'unsupported');
    const bad = (a: object) => JSON.stringify({ ...json, annotations: [{ ...json.annotations[0], ...a }] });
    assert.throws(() => parseAnnotationFile(bad({ end: 0 }), 'f.json'), /f\.json: annotations\[0\]: end \(0\) must be greater than start/);
    assert.throws(() => parseAnnotationFile(bad({ text: 'x' }), 'f.json'), /text has 1 characters but \[start, end\) spans 5/);
    assert.throws(() => parseAnnotationFile(bad({ updatedAt: 'yesterday' }), 'f.json'), /updatedAt must be an ISO 8601 UTC time/);
    assert.throws(() => parseAnnotationFile(bad({ origin: 'robot' }), 'f.json'), /origin must be one of user, detector-accepted/);
    assert.throws(() => parseAnnotationFile(JSON.stringify({ ...json, annotations: [json.annotations[0], json.annotations[0]] }), 'f.json'), /two annotations with id/);
  });

  it('maps spans to tokens with real tokenizer offsets', async () => {
    const tokenizer = MambaTokenizer.fromJson(await fs.readFile(TOKENIZER, 'utf8'), TOKENIZER);
    const text = 'def résumé(self):\n    return self.x\n';
    const { offsets } = tokenizer.encode(text);
    const span = spanOfChars(text, offsets, text.indexOf('self'), text.indexOf('self') + 4);
    assert.equal(span.text, 'self');
    const covered = offsets.slice(span.tokenStart, span.tokenEnd);
    assert.ok(covered[0][0] <= span.start && covered[covered.length - 1][1] >= span.end);
    const back = spanOfTokens(text, offsets, span.tokenStart, span.tokenEnd);
    assert.deepEqual([back.tokenStart, back.tokenEnd], [span.tokenStart, span.tokenEnd]);
    assert.deepEqual(tokensCovering(offsets, 0, text.length), { tokenStart: 0, tokenEnd: offsets.length });
  });
});

describe('annotations: detector suggestions', () => {
  const offsets = words(TEXT);
  // Token 0 forgotten at 4, token 2 forgotten at 6, the rest retained (−1).
  const forgottenAt = Int32Array.from(offsets, (_, i) => (i === 0 ? 4 : i === 2 ? 6 : -1));

  it('accepts one, rejects one, and only offers what is left; bulk accept covers the rest', () => {
    const ctx = context();
    const all = suggestionsFromForgotten(3, forgottenAt, 0.05, TEXT, offsets);
    assert.deepEqual(all.map((s) => [s.tokenIndex, s.forgottenAt, s.span.text]), [[0, 4, 'alpha'], [2, 6, 'beta']]);
    let file = acceptSuggestions(fileFor(TEXT), [all[0]], ctx);
    assert.deepEqual(file.annotations.map((a) => [a.label, a.origin, a.layer, a.threshold, a.text]), [['forgotten', 'detector-accepted', 3, 0.05, 'alpha']]);
    assert.deepEqual(pendingSuggestions(file, all), [all[1]]);
    const rejected = rejectSuggestions(file, [all[1]], ctx);
    assert.deepEqual(pendingSuggestions(rejected, all), []);
    assert.deepEqual(rejectSuggestions(rejected, [all[1]], ctx).dismissed, rejected.dismissed, 'rejecting twice records it once');
    // A changed text gets fresh suggestions: the dismissal was for the old text.
    const edited = 'omega ' + TEXT;
    const moved = reanchor(rejected, edited, words(edited)).file;
    const fresh = suggestionsFromForgotten(3, Int32Array.from(words(edited), (_, i) => (i === 4 ? 6 : -1)), 0.05, edited, words(edited));
    assert.deepEqual(pendingSuggestions(moved, fresh).map((s) => s.span.text), ['beta']);
    // Bulk: everything pending at once.
    file = acceptSuggestions(file, pendingSuggestions(file, all), ctx);
    assert.equal(file.annotations.length, 2);
    assert.deepEqual(pendingSuggestions(file, all), []);
  });
});

describe('annotations: merge', () => {
  it('two windows adding different annotations keep both (with or without a base)', () => {
    const base = annotate(fileFor(TEXT), TEXT, 'alpha', 0, context(undefined, 'base')).file;
    const ours = annotate(base, TEXT, 'beta', 0, context(undefined, 'ours')).file;
    const theirs = annotate(base, TEXT, 'zeta', 0, context(undefined, 'theirs')).file;
    for (const b of [base, undefined]) {
      assert.deepEqual(mergeAnnotationFiles(ours, theirs, b).annotations.map((a) => a.text).sort(), ['alpha', 'beta', 'zeta']);
    }
  });

  it('three-way: edits to different fields both survive; the same field takes the later edit', () => {
    const ctx = context();
    const base = annotate(fileFor(TEXT), TEXT, 'alpha', 0, ctx).file;
    const id = base.annotations[0].id;
    const ours = updateAnnotation(base, id, { note: 'our note' }, ctx);
    const theirs = updateAnnotation(base, id, { label: 'their label', note: 'their later note' }, { now: () => '2030-01-01T00:00:00.000Z' });
    const merged = mergeAnnotationFiles(ours, theirs, base).annotations[0];
    assert.equal(merged.label, 'their label');
    assert.equal(merged.note, 'their later note');
    const ours2 = updateAnnotation(base, id, { layer: 7 }, ctx);
    const both = mergeAnnotationFiles(ours2, theirs, base).annotations[0];
    assert.deepEqual([both.layer, both.label, both.note], [7, 'their label', 'their later note']);
    // Without a base the later version wins whole.
    assert.equal(mergeAnnotationFiles(ours2, theirs).annotations[0].layer, 1);
  });

  it('a delete is not resurrected by an older copy; an edit made after the delete wins', () => {
    const ctx = context();
    const base = annotate(fileFor(TEXT), TEXT, 'alpha', 0, ctx).file;
    const id = base.annotations[0].id;
    const deleted = deleteAnnotations(base, [id], ctx);
    assert.deepEqual(mergeAnnotationFiles(base, deleted).annotations, []);
    assert.deepEqual(mergeAnnotationFiles(deleted, base).annotations, []);
    assert.deepEqual(mergeAnnotationFiles(base, deleted, base).annotations, []);
    ctx.tick(1000);
    const editedLater = updateAnnotation(base, id, { note: 'still needed' }, ctx);
    const merged = mergeAnnotationFiles(deleted, editedLater, base);
    assert.equal(merged.annotations[0].note, 'still needed');
    assert.deepEqual(merged.tombstones, []);
    // Removed by hand (no tombstone) while the other side left it alone: a deletion, remembered as a tombstone.
    const byHand = { ...base, annotations: [] };
    const m = mergeAnnotationFiles(base, byHand, base);
    assert.deepEqual(m.annotations, []);
    assert.deepEqual(m.tombstones.map((t) => t.id), [id]);
  });

  it('is order-independent and never drops an annotation that is live and newer than every delete (random histories)', () => {
    const ops = fc.array(fc.record({ side: fc.constantFrom(0, 1), kind: fc.constantFrom('add', 'edit', 'delete', 'sync'), pick: fc.nat(), word: fc.constantFrom('alpha', 'beta', 'gamma', 'zeta') }), { maxLength: 30 });
    fc.assert(
      fc.property(ops, (history) => {
        const ctx = context();
        const sides: AnnotationFile[] = [fileFor(TEXT), fileFor(TEXT)];
        const everAdded = new Set<string>();
        for (const op of history) {
          const f = sides[op.side];
          if (op.kind === 'add') {
            const r = annotate(f, TEXT, op.word, 0, ctx);
            sides[op.side] = r.file;
            everAdded.add(r.annotation.id);
          } else if (op.kind === 'edit' && f.annotations.length) {
            sides[op.side] = updateAnnotation(f, f.annotations[op.pick % f.annotations.length].id, { note: `n${op.pick}` }, ctx);
          } else if (op.kind === 'delete' && f.annotations.length) {
            sides[op.side] = deleteAnnotations(f, [f.annotations[op.pick % f.annotations.length].id], ctx);
          } else if (op.kind === 'sync') {
            sides[op.side] = mergeAnnotationFiles(f, sides[1 - op.side]);
          }
        }
        const ab = mergeAnnotationFiles(sides[0], sides[1]);
        const ba = mergeAnnotationFiles(sides[1], sides[0]);
        const key = (f: AnnotationFile) => JSON.stringify([...f.annotations].sort((x, y) => (x.id < y.id ? -1 : 1)));
        assert.equal(key(ab), key(ba));
        // Every id ever created is either live or tombstoned in the merge: nothing vanishes.
        for (const id of everAdded) assert.ok(ab.annotations.some((a) => a.id === id) || ab.tombstones.some((t) => t.id === id), id);
        // A live version on either side that is newer than every tombstone of its id survives.
        for (const side of sides) {
          for (const a of side.annotations) {
            const deletedAt = Math.max(...[...sides[0].tombstones, ...sides[1].tombstones].filter((t) => t.id === a.id).map((t) => Date.parse(t.deletedAt)), -Infinity);
            if (Date.parse(a.updatedAt) > deletedAt) assert.ok(ab.annotations.some((x) => x.id === a.id), `lost ${a.id}`);
          }
        }
        assert.equal(key(mergeAnnotationFiles(ab, ab, ab)), key(ab));
      }),
      { numRuns: 300 },
    );
  });
});

describe('annotations: re-anchoring when the sample changes', () => {
  function setup() {
    const ctx = context();
    let file = fileFor(TEXT);
    for (const [w, k] of [['alpha', 0], ['gamma', 0], ['beta', 1], ['zeta', 0]] as const) file = annotate(file, TEXT, w, k, ctx).file;
    return file;
  }
  const texts = (f: AnnotationFile) => f.annotations.map((a) => [a.text, a.start, a.stale] as const);

  it('follows text inserted before, marks an edited span stale, and un-stales it when the edit is undone', () => {
    const file = setup();
    const edited = '# header\n' + TEXT.replace('gamma', 'GAMMA');
    const r = reanchor(file, edited, words(edited));
    assert.equal(r.file.annotations.length, 4, 'nothing dropped');
    assert.deepEqual(texts(r.file), [['alpha', 9, false], ['gamma', 11, true], ['beta', 32, false], ['zeta', 45, false]]);
    assert.deepEqual(r.stale, [file.annotations[1].id]);
    for (const a of r.file.annotations.filter((x) => !x.stale)) {
      assert.equal(edited.slice(a.start, a.end), a.text);
      assert.deepEqual(words(edited).slice(a.tokenStart, a.tokenEnd).map(([s, e]) => edited.slice(s, e)), [a.text]);
    }
    assert.equal(r.file.sample.sha256, sha256Hex(edited));
    const undone = reanchor(r.file, TEXT, words(TEXT)).file;
    assert.deepEqual(texts(undone), texts(file));
  });

  it('prefers matching context, then nearness, then a unique occurrence; copies it cannot tell apart are stale, never a guess', () => {
    const file = setup();
    // "beta" (second one, old offset 23) now appears 3 times; the nearest to 23 is taken.
    const t1 = TEXT.replace('beta epsilon', 'beta beta epsilon');
    assert.deepEqual(texts(reanchor(file, t1, words(t1)).file)[2], ['beta', 23, false]);
    // The line with the second "beta" moved to the end: its context tells it from the first "beta".
    const movedLine = TEXT.replace('beta epsilon zeta\n', '') + 'x'.repeat(2000) + '\nbeta epsilon zeta\n';
    assert.deepEqual(texts(reanchor(file, movedLine, words(movedLine)).file)[2], ['beta', movedLine.length - 18, false]);
    // "zeta" moved far away (beyond the search window) but is unique: found.
    const far = TEXT.replace('zeta', '') + 'x'.repeat(2000) + ' zeta';
    assert.deepEqual(texts(reanchor(file, far, words(far)).file)[3], ['zeta', far.length - 4, false]);
    // "alpha" twice, far from the old offset and equally far apart: ambiguous → stale at the old place.
    const twice = 'y'.repeat(1000) + TEXT.replace('alpha', '') + 'alpha' + 'y'.repeat(600) + 'alpha';
    const r = reanchor(file, twice, words(twice)).file;
    assert.deepEqual(texts(r)[0], ['alpha', 0, true]);
  });

  it('never drops an annotation under random edits, and anchored ones always point at their text', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ at: fc.nat(), del: fc.nat({ max: 8 }), ins: fc.string({ maxLength: 6 }) }), { maxLength: 12 }), (edits) => {
        let file = setup();
        let text = TEXT;
        for (const e of edits) {
          const at = e.at % (text.length + 1);
          text = text.slice(0, at) + e.ins + text.slice(at + e.del);
          file = reanchor(file, text, words(text)).file;
          assert.equal(file.annotations.length, 4);
          for (const a of file.annotations) if (!a.stale) assert.equal(text.slice(a.start, a.end), a.text);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('annotations: the evidence of an accepted suggestion (schema version 2)', () => {
  it('keeps the retention and the causal check through save, load and every export; a version 1 file still loads, evidence null', () => {
    const ctx = context();
    const offsets = words(TEXT);
    const [gamma, beta] = suggestionsFromForgotten(1, [-1, -1, -1, -1, 9, -1, -1, -1, 11, -1, -1, -1, -1], 0.05, TEXT, offsets);
    assert.deepEqual([gamma.tokenIndex, beta.tokenIndex], [4, 8]);
    const file = acceptSuggestions(fileFor(TEXT), [{ ...gamma, causal: { meanKl: 2.5e-4, epsilon: 1e-3 } }, beta], ctx);
    const [a, b] = sortByStart(file.annotations);
    assert.deepEqual([a.forgottenAt, a.causalKl, a.causalEpsilon, a.threshold], [9, 2.5e-4, 1e-3, 0.05]);
    assert.match(a.note, /mean KL of 0\.000250 nats, below ε = 0\.001: causally forgotten$/);
    assert.deepEqual([b.forgottenAt, b.causalKl, b.causalEpsilon], [11, null, null], 'accepted without a check: the retention alone');
    const text = formatAnnotationFile(file);
    assert.equal(JSON.parse(text).version, ANNOTATION_VERSION);
    assert.deepEqual(parseAnnotationFile(text, 'f.json').annotations, file.annotations);
    for (const format of ['json', 'jsonl', 'csv'] as const) {
      const back = sortByStart(importAnnotations(exportAnnotations(file, format), format, `a.${format}`).annotations);
      assert.deepEqual(back.map((x) => [x.forgottenAt, x.causalKl, x.causalEpsilon]), [[9, 2.5e-4, 1e-3], [11, null, null]], format);
    }
    // A file saved by version 1, before the evidence existed: it loads, and saves as version 2.
    const v1 = JSON.parse(text);
    v1.version = 1;
    for (const x of v1.annotations) for (const k of ['forgottenAt', 'causalKl', 'causalEpsilon']) delete x[k];
    const old = parseAnnotationFile(JSON.stringify(v1), 'old.json');
    assert.deepEqual(old.annotations.map((x) => [x.forgottenAt, x.causalKl, x.causalEpsilon, x.note]), sortByStart(file.annotations).map((x) => [null, null, null, x.note]));
    assert.equal(JSON.parse(formatAnnotationFile(old)).version, ANNOTATION_VERSION);
    const bad = (x: object) => JSON.stringify({ ...JSON.parse(text), annotations: [{ ...JSON.parse(text).annotations[0], ...x }] });
    assert.throws(() => parseAnnotationFile(bad({ causalEpsilon: null }), 'f.json'), /causalKl and causalEpsilon go together/);
    assert.throws(() => parseAnnotationFile(bad({ causalKl: -1 }), 'f.json'), /causalKl must be null or a KL ≥ 0/);
  });
});

function sortByStart(list: readonly Annotation[]): Annotation[] {
  return [...list].sort((x, y) => x.start - y.start);
}

describe('annotations: export and import', () => {
  function sampleFile(): AnnotationFile {
    const ctx = context();
    let file = annotate(fileFor(TEXT), TEXT, 'alpha', 0, ctx).file;
    file = annotate(file, TEXT, 'beta', 1, ctx, 'custom, "quoted" label').file;
    file = updateAnnotation(file, file.annotations[1].id, { note: 'line one\nline "two", with commas\r\n  and spaces  ', threshold: null, layer: null }, ctx);
    file = annotate(file, TEXT, 'zeta', 0, ctx, '=cmd|x').file;
    return updateAnnotation(file, file.annotations[2].id, { note: ' ✓ émoji 🎉 ' }, ctx);
  }

  for (const format of ['json', 'jsonl', 'csv'] as const) {
    it(`round-trips ${format}`, () => {
      const file = sampleFile();
      const text = exportAnnotations(file, format);
      const back = importAnnotations(text, format, `a.${format}`);
      assert.deepEqual(JSON.stringify(back.annotations.sort((a, b) => a.start - b.start)), JSON.stringify([...file.annotations].sort((a, b) => a.start - b.start)));
      // Importing into the same file changes nothing.
      assert.equal(formatAnnotationFile(importInto(file, text, format, `a.${format}`)), formatAnnotationFile(file));
    });
  }

  it('a whole-file JSON import carries its deletions', () => {
    const file = sampleFile();
    const deleted = deleteAnnotations(file, [file.annotations[0].id], context(Date.parse('2031-01-01T00:00:00.000Z')));
    assert.equal(importInto(file, exportAnnotations(deleted, 'json'), 'json', 'a.json').annotations.length, 2);
  });

  it('reports the line of a bad row (counting line breaks inside quoted fields), bad headers and broken quoting', () => {
    const csv = exportAnnotations(sampleFile(), 'csv');
    const lines = csv.split('\n');
    // Quoted notes and context span several lines, so the "zeta" row (the 3rd) starts well after line 4.
    const zetaLine = lines.findIndex((l) => l.includes(',zeta,')) + 1;
    assert.ok(zetaLine > 4, `zeta on line ${zetaLine}`);
    const broken = csv.replace(/,zeta,([^,]*),([^,]*),(\d+),/, ',zeta,$1,$2,x$3,');
    assert.throws(() => importAnnotations(broken, 'csv', 'in.csv'), new RegExp(`in\\.csv: line ${zetaLine}: tokenStart must be a non-negative integer; got "x`));
    assert.throws(() => importAnnotations(csv.replace('tokenEnd', 'tokenFinish'), 'csv', 'in.csv'), /in\.csv: line 1: the header lacks column tokenEnd/);
    assert.throws(() => importAnnotations('start,end\n"1,2\n', 'csv', 'in.csv'), /line 2: a quoted field is never closed/);
    assert.throws(() => importAnnotations('start,end\n1,"2"x\n', 'csv', 'in.csv'), /line 2: text after the closing quote/);
    assert.throws(() => importAnnotations(csv + '1,2\r\n', 'csv', 'in.csv'), new RegExp(`in\\.csv: line ${lines.length}: has 2 fields, the header has ${ANNOTATION_FIELDS.length}`));
    const jsonl = exportAnnotations(sampleFile(), 'jsonl').split('\n');
    jsonl[1] = jsonl[1].replace('"end":', '"end":"oops","was":');
    assert.throws(() => importAnnotations(jsonl.join('\n'), 'jsonl', 'in.jsonl'), /in\.jsonl: line 2: end must be a non-negative integer/);
    assert.throws(() => importAnnotations('{"a":1}', 'json', 'in.json'), /neither a Mamba Scope annotation file nor a JSON array/);
  });

  it('accepts hand-made CSV rows with only the essential columns', () => {
    const csv = 'start,end,text,tokenStart,tokenEnd,label,note\n0,5,alpha,0,1,retained,"kept, surely"\n';
    const [a] = importAnnotations(csv, 'csv', 'hand.csv', context()).annotations;
    assert.deepEqual([a.id, a.label, a.note, a.layer, a.threshold, a.origin, a.stale, a.createdAt], ['id-0', 'retained', 'kept, surely', null, null, 'user', false, '2024-05-01T10:00:00.000Z']);
  });

  it('parseCsv: RFC 4180 quoting, CRLF and LF, blank lines, BOM-free input', () => {
    assert.deepEqual(parseCsv('a,"b ""q"", c",\r\n\r\n"x\ny",z,\n', 's'), [
      { cells: ['a', 'b "q", c', ''], line: 1 },
      { cells: ['x\ny', 'z', ''], line: 3 },
    ]);
  });
});
