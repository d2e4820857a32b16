/**
 * Fuzz targets for the annotation files (.mamba-scope/annotations/*.json) and CSV imports: both
 * are read from disk or from a user's file, so both must fail with an InputError and never crash.
 * Beyond "typed errors only", a file that parses must survive the rest of the pipeline: formatting
 * is stable, re-anchoring keeps every annotation, and each export re-imports to the same
 * annotations. A failure there is thrown as a plain Error, which the harness reports as a bug.
 */
import fc from 'fast-check';
import { reanchor } from '../../src/engine/annotations/anchor';
import { exportAnnotations, importAnnotations, EXCHANGE_FORMATS } from '../../src/engine/annotations/exchange';
import { ANNOTATION_VERSION, formatAnnotationFile, parseAnnotationFile } from '../../src/engine/annotations/schema';
import { decodeUtf8 } from '../../src/engine/io';
import type { TextPart } from './mutate';
import type { FuzzTarget } from './targets';

const MiB = 1 << 20;
const lossyUtf8 = new TextDecoder('utf-8');
const encodeText = (s: string) => new TextEncoder().encode(s);
const wholeText = (input: Uint8Array): TextPart => ({ text: lossyUtf8.decode(input), rebuild: encodeText });

const TEXT = 'def f(x):\n    return x + 1  # é 🙂\n' + 'x = f(1)\n'.repeat(8);
const OFFSETS = Array.from(TEXT, (_, i) => [i, i + 1] as [number, number]);
const HASH = 'a'.repeat(64);

/** Mostly valid values, so that most inputs get past validation into the rest of the pipeline. */
const mostly = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>): fc.Arbitrary<T | U> => fc.oneof({ arbitrary: valid, weight: 30 }, { arbitrary: invalid, weight: 1 });
const field = <T>(valid: fc.Arbitrary<T>) => mostly(valid, fc.jsonValue({ maxDepth: 1 }));
const time = mostly(fc.constantFrom('2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.001Z', '2099-12-31T23:59:59.999Z'), fc.string({ maxLength: 24 }));

const annotation = fc
  .record({
    id: mostly(fc.uuid(), fc.string({ maxLength: 3 })), start: fc.nat(TEXT.length - 1), len: mostly(fc.integer({ min: 1, max: 6 }), fc.integer({ min: -1, max: 0 })),
    label: mostly(fc.oneof(fc.constantFrom('forgotten', 'retained'), fc.string({ minLength: 1, maxLength: 5 })), fc.constant('')), note: fc.string({ maxLength: 12 }),
    layer: fc.option(fc.nat(3)), threshold: fc.option(mostly(fc.double({ min: 0.001, max: 1, noNaN: true }), fc.double({ noNaN: false }))),
    stale: fc.boolean(), origin: mostly(fc.constantFrom('user', 'detector-accepted'), fc.constant('x')), createdAt: time, updatedAt: time,
    junk: mostly(fc.constant({}), fc.dictionary(fc.constantFrom('start', 'end', 'text', 'tokenStart', 'prefix'), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 })),
  })
  .map((a) => {
    const end = Math.min(TEXT.length, a.start + a.len);
    return {
      id: a.id, start: a.start, end, text: TEXT.slice(a.start, Math.max(a.start, end)), prefix: TEXT.slice(Math.max(0, a.start - 4), a.start), suffix: TEXT.slice(end, end + 4),
      tokenStart: a.start, tokenEnd: Math.max(a.start, end), layer: a.layer, threshold: a.threshold, label: a.label, note: a.note,
      origin: a.origin, stale: a.stale, createdAt: a.createdAt, updatedAt: a.updatedAt, ...(a.junk as object),
    };
  });

const annotationFile = fc.record({
  format: field(fc.constant('mamba-scope-annotations')),
  version: field(fc.constant(1)),
  sample: field(fc.record({ path: fc.constant('x.py'), sha256: mostly(fc.constant(HASH), fc.constant('nope')), length: mostly(fc.constantFrom(TEXT.length, 3), fc.constant(-1)) })),
  model: field(fc.option(fc.record({ id: fc.constant('m'), configSha256: fc.constant(HASH) }))),
  tokenizer: field(fc.option(fc.record({ sha256: fc.constant(HASH) }))),
  annotations: fc.array(annotation, { maxLength: 5 }),
  tombstones: fc.array(fc.record({ id: mostly(fc.uuid(), fc.constant('')), deletedAt: time }), { maxLength: 2 }),
  dismissed: fc.array(fc.record({ layer: fc.nat(3), start: fc.nat(9), end: fc.nat(9), sampleSha256: fc.constant(HASH), dismissedAt: time }), { maxLength: 2 }),
});

/** Parsed files must format stably, re-anchor without losing anything and survive every export. */
function checkPipeline(text: string, source: string): void {
  const file = parseAnnotationFile(text, source);
  const formatted = formatAnnotationFile(file);
  if (formatAnnotationFile(parseAnnotationFile(formatted, source)) !== formatted) throw new Error('formatting a parsed annotation file is not stable');
  const anchored = reanchor(file, TEXT, OFFSETS).file;
  if (anchored.annotations.length !== file.annotations.length) throw new Error('re-anchoring dropped an annotation');
  for (const format of EXCHANGE_FORMATS) {
    let back;
    try {
      back = importAnnotations(exportAnnotations(anchored, format), format, `export.${format}`);
    } catch (e) {
      throw new Error(`the ${format} export of a valid file does not import: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (back.annotations.length !== anchored.annotations.length) throw new Error(`the ${format} export lost annotations`);
  }
}

export const annotationsTarget: FuzzTarget = {
  name: 'annotations',
  textPart: wholeText,
  generate: annotationFile.map((f) => encodeText(JSON.stringify(f))),
  run: async (input) => checkPipeline(decodeUtf8(input, 'annotations.json'), 'annotations.json'),
  allocationBudget: (n) => 16 * MiB + 64 * n,
};

export const annotationsCsvTarget: FuzzTarget = {
  name: 'annotations-csv',
  textPart: wholeText,
  generate: fc
    .tuple(annotationFile, fc.array(fc.tuple(fc.nat(), fc.constantFrom('"', ',', '\n', '\r\n', '""', 'x', '')), { maxLength: 3 }))
    .map(([f, edits]) => {
      let csv: string;
      try {
        csv = exportAnnotations(parseAnnotationFile(JSON.stringify(f), 'gen.json'), 'csv');
      } catch {
        csv = 'id,start,end,text,tokenStart,tokenEnd,label\n,0,1,d,0,1,forgotten\n';
      }
      for (const [at, s] of edits) csv = csv.slice(0, at % (csv.length + 1)) + s + csv.slice(at % (csv.length + 1));
      return encodeText(csv);
    }),
  run: async (input) => {
    const { annotations } = importAnnotations(decodeUtf8(input, 'annotations.csv'), 'csv', 'annotations.csv');
    const back = importAnnotations(exportAnnotations({ format: 'mamba-scope-annotations', version: ANNOTATION_VERSION, sample: { path: 'x.py', sha256: HASH, length: TEXT.length }, model: null, tokenizer: null, annotations, tombstones: [], dismissed: [] }, 'csv'), 'csv', 're-export.csv');
    if (JSON.stringify(back.annotations.map((a) => a.id).sort()) !== JSON.stringify(annotations.map((a) => a.id).sort())) throw new Error('a CSV re-export lost annotations');
  },
  allocationBudget: (n) => 16 * MiB + 64 * n,
};
