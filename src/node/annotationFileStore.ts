/**
 * Annotation files on disk: `.mamba-scope/annotations/<sample>-<hash>.json` in the workspace.
 *
 * save() is read-merge-write under a lock: it re-reads the file, merges what is there (another
 * window's work) with the caller's version three-way against the version the caller last
 * loaded, re-anchors the result to the caller's sample text and writes it atomically. So two
 * windows both keep their annotations, and a crash mid-save leaves the previous file.
 * A corrupt file is moved aside to a .bak (never overwritten, never deleted) and reported; a
 * file of a newer schema version is left untouched and refused.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { reanchor } from '../engine/annotations/anchor';
import type { TokenOffsets } from '../engine/annotations/edit';
import { mergeAnnotationFiles } from '../engine/annotations/merge';
import { formatAnnotationFile, NewerVersionError, parseAnnotationFile, type AnnotationFile } from '../engine/annotations/schema';
import { sha256Hex } from '../engine/annotations/sha256';
import { InputError, isMambaScopeError } from '../engine/errors';
import { withFileLock, writeFileAtomic, type AtomicWriteOptions, type LockOptions } from './atomicWrite';

export const ANNOTATIONS_DIR = path.join('.mamba-scope', 'annotations');

/** The sample as the saving window has it open. */
export interface OpenSample {
  readonly text: string;
  /** MambaTokenizer.encode(text).offsets. */
  readonly offsets: TokenOffsets;
}

/** The file was unreadable; its bytes are safe at backupPath. */
export class CorruptAnnotationFileError extends InputError {
  constructor(file: string, problem: string, readonly backupPath: string) {
    super(file, `${problem}; moved it to ${path.basename(backupPath)} (nothing deleted); the next save starts a new file`);
  }
}

export interface AnnotationStoreOptions extends AtomicWriteOptions {
  readonly lock?: LockOptions;
}

export class AnnotationFileStore {
  constructor(readonly workspaceRoot: string, private readonly options: AnnotationStoreOptions = {}) {}

  /**
   * The annotation file of a sample (workspace-relative or absolute path). The name is the
   * sanitized base name plus a short hash of the relative path, so a/x.py and b/x.py differ.
   */
  fileFor(samplePath: string): string {
    const key = this.sampleKey(samplePath);
    const base = path.basename(key).replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 80) || 'sample';
    return path.join(this.workspaceRoot, ANNOTATIONS_DIR, `${base}-${sha256Hex(key).slice(0, 8)}.json`);
  }

  /** Workspace-relative with '/' separators; an absolute path for a sample outside the workspace. */
  sampleKey(samplePath: string): string {
    const abs = path.resolve(this.workspaceRoot, samplePath);
    const rel = path.relative(this.workspaceRoot, abs);
    return (rel.startsWith('..') || path.isAbsolute(rel) ? abs : rel).split(path.sep).join('/');
  }

  /** null when the sample has no annotation file yet. */
  async read(samplePath: string): Promise<AnnotationFile | null> {
    return this.readFile(this.fileFor(samplePath));
  }

  /**
   * Saves `ours` (the caller's edited copy), merged with whatever is on disk now. `base` is the
   * version the caller loaded (or last got back from save), null if it started from nothing.
   * Returns the merged file as written: use it as the next base and show it.
   */
  async save(samplePath: string, ours: AnnotationFile, base: AnnotationFile | null, sample: OpenSample): Promise<AnnotationFile> {
    const file = this.fileFor(samplePath);
    await fs.mkdir(path.dirname(file), { recursive: true });
    return withFileLock(
      `${file}.lock`,
      async () => {
        const disk = await this.readFile(file);
        const merged = disk ? mergeAnnotationFiles(ours, disk, base) : ours;
        const anchored = reanchor({ ...merged, sample: { ...merged.sample, path: this.sampleKey(samplePath) } }, sample.text, sample.offsets).file;
        await writeFileAtomic(file, formatAnnotationFile(anchored), this.options);
        return anchored;
      },
      this.options.lock,
    );
  }

  private async readFile(file: string): Promise<AnnotationFile | null> {
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new InputError(file, `cannot be read (${(e as Error).message})`);
    }
    try {
      return parseAnnotationFile(text, file);
    } catch (e) {
      if (e instanceof NewerVersionError || !isMambaScopeError(e)) throw e;
      const backup = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}.bak`;
      await fs.rename(file, backup);
      throw new CorruptAnnotationFileError(file, e.problem, backup);
    }
  }
}
