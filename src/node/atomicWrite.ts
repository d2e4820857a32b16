/**
 * Crash-safe file updates for files people care about (annotations):
 * - writeFileAtomic: a reader, or the next start after a crash, sees the old file or the new
 *   one, never a torn mix. Temp file in the same directory (rename is only atomic within one
 *   file system), fsync of the data before the rename, fsync of the directory after it so the
 *   rename itself survives a power cut where the platform allows.
 * - withFileLock: one writer at a time across processes (two VS Code windows), by creating a
 *   lock file with O_EXCL. A lock whose holder died (same host, pid gone) or that is older than
 *   staleMs is broken, so a crash never blocks saving forever.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LimitError } from '../engine/errors';

export interface AtomicWriteOptions {
  /** Leftover temp files of this target from dead processes older than this are removed; default 30 s. */
  readonly orphanAgeMs?: number;
}

export async function writeFileAtomic(filePath: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = path.dirname(filePath);
  const tmp = path.join(dir, `.${path.basename(filePath)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const mode = await fs.stat(filePath).then((s) => s.mode & 0o777, () => 0o644);
  const handle = await fs.open(tmp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    await handle.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  try {
    await renameWithRetry(tmp, filePath);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await syncDirectory(dir);
  await removeOrphanTemps(filePath, options.orphanAgeMs ?? 30_000);
}

/** Windows refuses to replace a file another process (an indexer, a virus scanner) has open for a moment. */
async function renameWithRetry(from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fs.rename(from, to);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (process.platform !== 'win32' || attempt >= 10 || !(code === 'EPERM' || code === 'EACCES' || code === 'EBUSY')) throw e;
      await sleep(20 * (attempt + 1));
    }
  }
}

async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch {
    // Windows cannot open or fsync a directory; its rename is durable enough on NTFS.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Temp files a killed writer left behind: same target, writer process gone, not brand new. */
async function removeOrphanTemps(filePath: string, minAgeMs: number): Promise<void> {
  const dir = path.dirname(filePath);
  const pattern = new RegExp(`^\\.${escapeRegExp(path.basename(filePath))}\\.(\\d+)\\.[0-9a-f]+\\.tmp$`);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1]);
    if (!pid || pid === process.pid || isProcessAlive(pid)) continue;
    const full = path.join(dir, name);
    const stat = await fs.stat(full).catch(() => undefined);
    if (stat && Date.now() - stat.mtimeMs >= minAgeMs) await fs.rm(full, { force: true });
  }
}

export interface LockOptions {
  /** A lock older than this is assumed abandoned; default 30 s (saves take milliseconds). */
  readonly staleMs?: number;
  /** Give up waiting after this long; default 15 s. */
  readonly timeoutMs?: number;
}

interface LockContent {
  readonly pid: number;
  readonly host: string;
  readonly token: string;
}

/** Runs `fn` holding `lockPath`; the lock is released even if `fn` throws. */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const token = await acquire(lockPath, options.staleMs ?? 30_000, options.timeoutMs ?? 15_000);
  try {
    return await fn();
  } finally {
    await release(lockPath, token);
  }
}

async function acquire(lockPath: string, staleMs: number, timeoutMs: number): Promise<string> {
  const mine: LockContent = { pid: process.pid, host: os.hostname(), token: randomBytes(8).toString('hex') };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await fs.open(lockPath, 'wx');
      try {
        await handle.writeFile(JSON.stringify(mine));
      } finally {
        await handle.close();
      }
      return mine.token;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = await readLock(lockPath);
    if (holder && isAbandoned(holder, staleMs)) {
      // Move it away before deleting, so only one of several waiters breaks a given lock.
      const aside = `${lockPath}.${mine.token}.broken`;
      try {
        await fs.rename(lockPath, aside);
        await fs.rm(aside, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      continue;
    }
    if (Date.now() > deadline) {
      const who = holder?.content ? `process ${holder.content.pid} on ${holder.content.host}` : 'another process';
      throw new LimitError(lockPath, `is held by ${who}; waited ${timeoutMs} ms (delete the file if no Mamba Scope window is saving)`);
    }
    await sleep(10 + Math.random() * 30);
  }
}

function isAbandoned(holder: { content?: LockContent; ageMs: number }, staleMs: number): boolean {
  if (holder.ageMs > staleMs) return true;
  const c = holder.content;
  return c !== undefined && c.host === os.hostname() && !isProcessAlive(c.pid);
}

/** undefined when the lock vanished meanwhile; content undefined while its creator is still writing it. */
async function readLock(lockPath: string): Promise<{ content?: LockContent; ageMs: number } | undefined> {
  try {
    const [text, stat] = await Promise.all([fs.readFile(lockPath, 'utf8'), fs.stat(lockPath)]);
    let content: LockContent | undefined;
    try {
      const j = JSON.parse(text) as Partial<LockContent>;
      if (typeof j.pid === 'number' && typeof j.host === 'string' && typeof j.token === 'string') content = j as LockContent;
    } catch {
      content = undefined;
    }
    return { content, ageMs: Date.now() - stat.mtimeMs };
  } catch {
    return undefined;
  }
}

/** Removes the lock only if it is still ours: after a stale break it may belong to someone else. */
async function release(lockPath: string, token: string): Promise<void> {
  const holder = await readLock(lockPath);
  if (holder?.content?.token === token) await fs.rm(lockPath, { force: true });
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
