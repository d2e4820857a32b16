/**
 * Child process for the annotation store tests (run with `node --import tsx`):
 *   write-loop <file> <count>   writes generations 1, 2, … of a large annotation file with
 *                               writeFileAtomic, printing "begin <g>" before each write, until killed.
 *   writer <root> <name> <n> <startAtMs>
 *                               a "window": adds n annotations one save at a time, edits the
 *                               shared annotation, deletes its first one; prints a JSON summary.
 */
import { addAnnotation, deleteAnnotations, spanOfChars, updateAnnotation } from '../../src/engine/annotations/edit';
import { emptyAnnotationFile, formatAnnotationFile, type AnnotationFile } from '../../src/engine/annotations/schema';
import { sha256Hex } from '../../src/engine/annotations/sha256';
import { AnnotationFileStore } from '../../src/node/annotationFileStore';
import { writeFileAtomic } from '../../src/node/atomicWrite';

export const SAMPLE_TEXT = 'def f(x):\n    return x + 1\n'.repeat(40);
/** One character per token: simple and enough for the store. */
export const SAMPLE_OFFSETS = Array.from(SAMPLE_TEXT, (_, i) => [i, i + 1] as [number, number]);
export const SHARED_ID = '00000000-0000-4000-8000-000000000000';

/** A valid annotation file of `count` annotations whose notes all name `generation`. */
export function bigFile(count: number, generation: number): AnnotationFile {
  const file = emptyAnnotationFile({ path: 'big.py', sha256: sha256Hex(SAMPLE_TEXT), length: SAMPLE_TEXT.length });
  const annotations = Array.from({ length: count }, (_, i) => {
    const start = i % (SAMPLE_TEXT.length - 4);
    const span = spanOfChars(SAMPLE_TEXT, SAMPLE_OFFSETS, start, start + 3);
    return {
      id: `id-${i}`, ...span, layer: i % 4, threshold: 0.05, forgottenAt: null, causalKl: null, causalEpsilon: null, label: 'forgotten', note: `generation ${generation} `.padEnd(300, '.'),
      createdAt: '2024-01-01T00:00:00.000Z', updatedAt: '2024-01-01T00:00:00.000Z', stale: false, origin: 'user' as const,
    };
  });
  return { ...file, annotations };
}

async function writeLoop(file: string, count: number): Promise<void> {
  // Build the text once per parity so each iteration's time goes into the write itself.
  const texts = [formatAnnotationFile(bigFile(count, 1000)), formatAnnotationFile(bigFile(count, 1001))];
  for (let g = 0; ; g++) {
    process.stdout.write(`begin ${1000 + (g % 2)}\n`);
    await writeFileAtomic(file, texts[g % 2]);
  }
}

async function writer(root: string, name: string, n: number, startAt: number): Promise<void> {
  const store = new AnnotationFileStore(root);
  const sample = { text: SAMPLE_TEXT, offsets: SAMPLE_OFFSETS };
  await new Promise((r) => setTimeout(r, Math.max(0, startAt - Date.now())));
  let base = await store.read('sample.py');
  let mine = base ?? emptyAnnotationFile({ path: 'sample.py', sha256: sha256Hex(SAMPLE_TEXT), length: SAMPLE_TEXT.length });
  const added: string[] = [];
  let sawOthers = 0;
  const save = async () => {
    const known = new Set(mine.annotations.map((a) => a.id));
    const saved = await store.save('sample.py', mine, base, sample);
    if (saved.annotations.some((a) => !known.has(a.id))) sawOthers++;
    mine = base = saved;
    await new Promise((r) => setTimeout(r, Math.random() * 8));
  };
  for (let i = 0; i < n; i++) {
    const start = (i * 7) % (SAMPLE_TEXT.length - 5);
    const r = addAnnotation(mine, { span: spanOfChars(SAMPLE_TEXT, SAMPLE_OFFSETS, start, start + 4), layer: 0, threshold: 0.05, label: `${name}-label`, note: `${name} #${i}` });
    mine = r.file;
    added.push(r.annotation.id);
    await save();
  }
  mine = name === 'A' ? updateAnnotation(mine, SHARED_ID, { note: 'note by A' }) : updateAnnotation(mine, SHARED_ID, { label: 'label by B' });
  await save();
  mine = deleteAnnotations(mine, [added[0]]);
  await save();
  process.stdout.write(JSON.stringify({ added, deleted: added[0], sawOthers }) + '\n');
}

if (require.main === module) {
  const [mode, ...args] = process.argv.slice(2);
  const run = mode === 'write-loop' ? writeLoop(args[0], Number(args[1])) : writer(args[0], args[1], Number(args[2]), Number(args[3]));
  run.catch((e) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
}
