import { InputError } from './errors';

/**
 * File access behind a small interface, so the engine runs unchanged in Node (CLI, extension host),
 * in the webview (buffers sent by the host) and in tests. Readers ask for byte ranges, never for
 * whole files: a 10 GB checkpoint is opened by reading its header only.
 */
export interface ByteSource {
  /** Shown in error messages: a path or a display name. */
  readonly name: string;
  readonly size: number;
  /** Reads exactly `length` bytes at `offset`; fails if the range is outside the source. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A folder of files (a model directory), addressed by relative path. */
export interface FileStore {
  readonly name: string;
  /** null when the file does not exist. */
  open(relativePath: string): Promise<ByteSource | null>;
}

/** A ByteSource over bytes already in memory (the webview, tests, small files). */
export class MemorySource implements ByteSource {
  constructor(readonly name: string, private readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.byteLength;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.bytes.byteLength) {
      throw new InputError(this.name, `read of ${length} bytes at ${offset} is outside the ${this.bytes.byteLength}-byte file (truncated?)`);
    }
    return this.bytes.subarray(offset, offset + length);
  }
}

/** A FileStore over in-memory files, keyed by relative path. */
export class MemoryStore implements FileStore {
  constructor(readonly name: string, private readonly files: Record<string, Uint8Array>) {}
  async open(relativePath: string): Promise<ByteSource | null> {
    const bytes = this.files[relativePath];
    return bytes ? new MemorySource(`${this.name}/${relativePath}`, bytes) : null;
  }
}

export async function readAll(source: ByteSource): Promise<Uint8Array> {
  return source.read(0, source.size);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
export function decodeUtf8(bytes: Uint8Array, sourceName: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new InputError(sourceName, 'not valid UTF-8 text');
  }
}
