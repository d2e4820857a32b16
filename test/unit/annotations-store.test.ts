import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { addAnnotation, spanOfChars } from '../../src/engine/annotations/edit';
import { ANNOTATION_VERSION, emptyAnnotationFile, formatAnnotationFile, NewerVersionError, parseAnnotationFile } from '../../src/engine/annotations/schema';
import { sha256Hex } from '../../src/engine/annotations/sha256';
import { LimitError } from '../../src/engine/errors';
import { AnnotationFileStore, CorruptAnnotationFileError } from '../../src/node/annotationFileStore';
import { withFileLock, writeFileAtomic } from '../../src/node/atomicWrite';
import { bigFile, SAMPLE_OFFSETS, SAMPLE_TEXT, SHARED_ID } from './annotations.child';

const CHILD = path.join(__dirname, 'annotations.child.ts');
const REPO = path.join(__dirname, '..', '..');

/** `onLine` runs synchronously as each line arrives (the kill test reacts without a polling delay). */
function startChild(args: string[], onLine?: (line: string, child: ChildProcess) => void): { child: ChildProcess; lines: string[]; exited: Promise<number | null>; stderr: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let err = '';
  let partial = '';
  child.stdout!.on('data', (b: Buffer) => {
    const parts = (partial + b.toString()).split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      onLine?.(line, child);
    }
  });
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, lines, exited, stderr: () => err };
}

const sample = { text: SAMPLE_TEXT, offsets: SAMPLE_OFFSETS };
const fresh = () => emptyAnnotationFile({ path: 'sample.py', sha256: sha256Hex(SAMPLE_TEXT), length: SAMPLE_TEXT.length });

describe('annotation file store', () => {
  let root: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'mamba-annotations-'));
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('names files .mamba-scope/annotations/<sanitized name>-<hash of the relative path>.json without collisions', () => {
    const store = new AnnotationFileStore(root);
    const a = store.fileFor('src/a/util.py'), b = store.fileFor('src/b/util.py');
    assert.match(path.relative(root, a), /^\.mamba-scope[\\/]annotations[\\/]util\.py-[0-9a-f]{8}\.json$/);
    assert.notEqual(a, b);
    assert.equal(store.fileFor(path.join(root, 'src', 'a', 'util.py')), a);
    assert.match(path.basename(store.fileFor('../outside/we ird:na*me?.py')), /^we_ird_na_me_\.py-[0-9a-f]{8}\.json$/);
    assert.match(path.basename(store.fileFor('...')), /^sample-[0-9a-f]{8}\.json$/);
    assert.equal(store.sampleKey('src\\a/../a/util.py'.split('\\').join(path.sep)), 'src/a/util.py');
  });

  it('saves and reads back; a second save merges with the disk instead of overwriting it', async () => {
    const store = new AnnotationFileStore(root);
    assert.equal(await store.read('sample.py'), null);
    const one = addAnnotation(fresh(), { span: spanOfChars(SAMPLE_TEXT, SAMPLE_OFFSETS, 0, 3), layer: 1, threshold: 0.05, label: 'forgotten' }).file;
    const saved = await store.save('sample.py', one, null, sample);
    assert.deepEqual(await store.read('sample.py'), saved);
    // Another window that never loaded the file saves its own annotation: both survive.
    const other = addAnnotation(fresh(), { span: spanOfChars(SAMPLE_TEXT, SAMPLE_OFFSETS, 4, 5), layer: null, threshold: null, label: 'mine' }).file;
    const merged = await store.save('sample.py', other, null, sample);
    assert.equal(merged.annotations.length, 2);
    assert.deepEqual((await store.read('sample.py'))!.annotations.map((a) => a.label).sort(), ['forgotten', 'mine']);
  });

  it('moves a corrupt file aside to a .bak with a clear error, and the next save starts a new file', async () => {
    const store = new AnnotationFileStore(root);
    const file = store.fileFor('sample.py');
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, '{"format": "mamba-scope-annotations", "version": 1, "annot');
    const err = await store.read('sample.py').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof CorruptAnnotationFileError, String(err));
    assert.match(err.message, /is not valid JSON.*moved it to .*\.bak \(nothing deleted\)/);
    assert.equal(await fs.readFile(err.backupPath, 'utf8'), '{"format": "mamba-scope-annotations", "version": 1, "annot');
    const saved = await store.save('sample.py', fresh(), null, sample);
    assert.deepEqual(await store.read('sample.py'), saved);
  });

  it('never writes over a file of a newer schema version', async () => {
    const store = new AnnotationFileStore(root);
    const file = store.fileFor('sample.py');
    await fs.mkdir(path.dirname(file), { recursive: true });
    const newer = JSON.stringify({ format: 'mamba-scope-annotations', version: ANNOTATION_VERSION + 1, whatever: [1, 2] });
    await fs.writeFile(file, newer);
    await assert.rejects(store.read('sample.py'), NewerVersionError);
    await assert.rejects(store.save('sample.py', fresh(), null, sample), /written by a newer Mamba Scope.*left untouched/);
    assert.equal(await fs.readFile(file, 'utf8'), newer);
    assert.deepEqual((await fs.readdir(path.dirname(file))).sort(), [path.basename(file)]);
  });

  it('a write killed with SIGKILL midway leaves the previous file whole (6 kills at different points)', async function () {
    this.timeout(120_000);
    const file = path.join(root, 'big.json');
    const count = 15_000; // ~10 MB: writing it takes tens of milliseconds
    // Kill this long after a write begins: spread over the write, its fsync and its rename.
    const delays = [2, 6, 12, 20, 30, 45];
    await writeFileAtomic(file, formatAnnotationFile(bigFile(10, 0)));
    let killedMidWrite = 0;
    for (let round = 0; round < delays.length; round++) {
      // Let some rounds complete a write first, so both "old" and "new" generations get tested.
      const begins = 1 + (round % 3);
      let seen = 0;
      const { exited, stderr } = startChild(['write-loop', file, String(count)], (line, child) => {
        if (line.startsWith('begin') && ++seen === begins) setTimeout(() => child.kill('SIGKILL'), delays[round]);
      });
      assert.equal(await exited, null, `the writer exited by itself: ${stderr()}`);
      const parsed = parseAnnotationFile(await fs.readFile(file, 'utf8'), file);
      const generations = new Set(parsed.annotations.map((a) => a.note.split(' ')[1]));
      assert.equal(generations.size, 1, 'every annotation from one write');
      const g = Number([...generations][0]);
      assert.ok(g === 0 || g === 1000 || g === 1001, `generation ${g}`);
      assert.equal(parsed.annotations.length, g === 0 ? 10 : count);
      if ((await fs.readdir(root)).some((n) => n.endsWith('.tmp'))) killedMidWrite++;
    }
    // The kill landed inside writeFileAtomic (its temp file was left behind) at least once.
    assert.ok(killedMidWrite > 0, 'no kill landed mid-write');
    // The next write removes temp files of dead writers.
    await writeFileAtomic(file, formatAnnotationFile(bigFile(10, 0)), { orphanAgeMs: 0 });
    assert.deepEqual(await fs.readdir(root), ['big.json']);
  });

  it('two concurrent writers (separate processes) both keep their annotations, edits and deletions', async function () {
    this.timeout(120_000);
    const store = new AnnotationFileStore(root);
    const seeded = addAnnotation(fresh(), { span: spanOfChars(SAMPLE_TEXT, SAMPLE_OFFSETS, 10, 16), layer: 0, threshold: 0.05, label: 'shared', note: 'seed' }, { newId: () => SHARED_ID }).file;
    await store.save('sample.py', seeded, null, sample);
    const n = 20;
    const startAt = String(Date.now() + 4000); // both are running by then
    const a = startChild(['writer', root, 'A', String(n), startAt]);
    const b = startChild(['writer', root, 'B', String(n), startAt]);
    assert.equal(await a.exited, 0, a.stderr());
    assert.equal(await b.exited, 0, b.stderr());
    const ra = JSON.parse(a.lines[0]) as { added: string[]; deleted: string; sawOthers: number };
    const rb = JSON.parse(b.lines[0]) as { added: string[]; deleted: string; sawOthers: number };
    // The writes interleaved: at least one save merged in the other process's work.
    assert.ok(ra.sawOthers + rb.sawOthers > 0, 'the writers did not overlap');
    const final = (await store.read('sample.py'))!;
    const ids = new Set(final.annotations.map((x) => x.id));
    for (const r of [ra, rb]) {
      for (const id of r.added) assert.equal(ids.has(id), id !== r.deleted, `annotation ${id}`);
      assert.ok(final.tombstones.some((t) => t.id === r.deleted));
    }
    assert.equal(final.annotations.length, 2 * (n - 1) + 1);
    const shared = final.annotations.find((x) => x.id === SHARED_ID)!;
    assert.equal(shared.note, 'note by A');
    assert.equal(shared.label, 'label by B');
    assert.equal((await fs.readdir(path.dirname(store.fileFor('sample.py')))).length, 1, 'no lock or temp file left');
  });

  it('breaks the lock of a dead process at once and times out on a live holder', async () => {
    const lock = path.join(root, 'x.lock');
    await fs.writeFile(lock, JSON.stringify({ pid: 2 ** 22 + 12345, host: os.hostname(), token: 'dead' }));
    assert.equal(await withFileLock(lock, async () => 'ran', { timeoutMs: 2000 }), 'ran');
    await fs.writeFile(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), token: 'alive' }));
    await assert.rejects(withFileLock(lock, async () => 'ran', { timeoutMs: 200 }), LimitError);
    // An old lock is stale even if its pid looks alive (pid reuse, another host).
    await assert.rejects(withFileLock(lock, async () => 'ran', { timeoutMs: 200, staleMs: 60_000 }), LimitError);
    assert.equal(await withFileLock(lock, async () => 'ran', { timeoutMs: 2000, staleMs: 0 }), 'ran');
    await assert.rejects(fs.stat(lock), /ENOENT/);
  });
});
