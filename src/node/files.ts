/**
 * Node adapters for the engine's file interface: byte-range reads through a file handle, so a
 * huge checkpoint is never read whole.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../engine/errors';
import type { ByteSource, FileStore } from '../engine/io';

export class NodeFileSource implements ByteSource {
  private constructor(readonly name: string, readonly size: number) {}

  static async open(filePath: string): Promise<NodeFileSource> {
    let stat;
    try {
      stat = await fs.stat(filePath);
    } catch {
      throw new InputError(filePath, 'does not exist or cannot be read');
    }
    if (!stat.isFile()) throw new InputError(filePath, 'is not a file');
    return new NodeFileSource(filePath, stat.size);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new InputError(this.name, `read of ${length} bytes at ${offset} is outside the ${this.size}-byte file (truncated?)`);
    }
    const handle = await fs.open(this.name, 'r');
    try {
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new InputError(this.name, `ended after ${offset + done} bytes while reading (file changed or truncated)`);
        done += bytesRead;
      }
      return buf;
    } finally {
      await handle.close();
    }
  }
}

export class NodeFolderStore implements FileStore {
  constructor(readonly name: string) {}

  async open(relativePath: string): Promise<ByteSource | null> {
    const full = path.join(this.name, relativePath);
    try {
      if (!(await fs.stat(full)).isFile()) return null;
    } catch {
      return null;
    }
    return NodeFileSource.open(full);
  }
}
