/**
 * A zip archive read by byte range: the central directory first (zip64 included, which numpy
 * writes for every .npz member and torch.save for archives over 4 GB), then members on demand.
 * Shared by the .npz reader and torch.save's zip format. Members may be stored or deflated; a
 * deflated member inflates into a buffer of its declared size, and one that inflates past it,
 * declares more than deflate can produce or fails its CRC is refused, so an archive cannot make
 * us allocate or inflate more than it honestly holds. Written here rather than with fflate's unzip,
 * which takes the whole archive in memory; only inflate comes from fflate.
 */
import { Inflate } from 'fflate';
import { InputError } from '../errors';
import { decodeUtf8, type ByteSource } from '../io';

/** Deflate cannot expand one input byte to more than 1032 output bytes (258-byte matches in 2 bits). */
const MAX_DEFLATE_RATIO = 1032;

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_ZIP64_END = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const END_BYTES = 22;
const MAX_COMMENT = 0xffff;

export interface ZipEntry {
  readonly name: string;
  readonly method: 0 | 8;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly localHeaderOffset: number;
  /** Where the member's (compressed) bytes begin, after its local header. */
  readonly dataStart: number;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A u64 from a zip64 record as a Number; sizes beyond 2^53 cannot be real. */
function u64(v: DataView, at: number, file: string, what: string): number {
  const n = v.getBigUint64(at, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new InputError(file, `zip64 ${what} ${n} is impossibly large (corrupt archive)`);
  return Number(n);
}

/** The central directory of a zip file, read by range; members are read on demand. */
export class ZipArchive {
  private constructor(
    readonly source: ByteSource,
    readonly entries: readonly ZipEntry[],
  ) {}

  get name(): string {
    return this.source.name;
  }

  static async open(source: ByteSource): Promise<ZipArchive> {
    const file = source.name;
    const { count, cdOffset, cdSize, cdLimit } = await readEnd(source);
    if (cdOffset + cdSize > cdLimit) {
      throw new InputError(file, `zip central directory (${cdSize} bytes at ${cdOffset}) runs past the end of the archive (truncated?)`);
    }
    const cd = await source.read(cdOffset, cdSize);
    const central = parseCentralDirectory(cd, count, file);
    const entries: ZipEntry[] = [];
    for (const c of central) {
      if (c.localHeaderOffset + 30 > cdOffset) throw new InputError(file, `member "${c.name}" has its header outside the archive's data (corrupt)`);
      const local = view(await source.read(c.localHeaderOffset, 30));
      if (local.getUint32(0, true) !== SIG_LOCAL) throw new InputError(file, `member "${c.name}" has no local header where the directory says (corrupt)`);
      const dataStart = c.localHeaderOffset + 30 + local.getUint16(26, true) + local.getUint16(28, true);
      if (dataStart + c.compressedSize > cdOffset) {
        throw new InputError(file, `member "${c.name}" (${c.compressedSize} bytes at ${dataStart}) runs into the central directory (truncated?)`);
      }
      entries.push({ ...c, dataStart });
    }
    // Members that share bytes are how "overlapping" zip bombs multiply their output.
    const sorted = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i].localHeaderOffset < sorted[i - 1].dataStart + sorted[i - 1].compressedSize) {
        throw new InputError(file, `members "${sorted[i - 1].name}" and "${sorted[i].name}" overlap (corrupt or a zip bomb)`);
      }
    }
    return new ZipArchive(source, entries);
  }

  /** The first `n` uncompressed bytes of a member (inflating no more than needed). */
  async peek(entry: ZipEntry, n: number): Promise<Uint8Array> {
    const want = Math.min(n, entry.uncompressedSize);
    if (entry.method === 0) return this.source.read(entry.dataStart, want);
    return this.inflate(entry, want, false);
  }

  /**
   * A whole member, CRC-checked. It is held in memory whole, so callers check
   * `entry.uncompressedSize` against their own limit first.
   */
  async extract(entry: ZipEntry): Promise<Uint8Array> {
    const bytes = entry.method === 0 ? await this.source.read(entry.dataStart, entry.compressedSize) : await this.inflate(entry, entry.uncompressedSize, true);
    if (crc32(bytes) !== entry.crc32) throw new InputError(this.name, `member "${entry.name}" fails its CRC check (corrupt)`);
    return bytes;
  }

  /**
   * Inflates a member into a buffer of `want` bytes, reading and pushing the compressed data in
   * small pieces so no single step can expand into a huge allocation, and stopping as soon as the
   * buffer is full. `whole`: the member must produce exactly `want` bytes.
   */
  private async inflate(entry: ZipEntry, want: number, whole: boolean): Promise<Uint8Array> {
    const what = `member "${entry.name}"`;
    const out = new Uint8Array(want);
    let filled = 0;
    let overflow = false;
    const inflater = new Inflate((chunk) => {
      const room = want - filled;
      if (chunk.length > room) overflow = true;
      out.set(chunk.length > room ? chunk.subarray(0, room) : chunk, filled);
      filled += Math.min(room, chunk.length);
    });
    const readSize = whole ? 1 << 20 : 1 << 12;
    const pushSize = 1 << 14;
    for (let pos = 0; pos < entry.compressedSize && !overflow && (whole || filled < want); ) {
      const piece = await this.source.read(entry.dataStart + pos, Math.min(readSize, entry.compressedSize - pos));
      for (let i = 0; i < piece.length && !overflow && (whole || filled < want); i += pushSize) {
        const last = pos + i + pushSize >= entry.compressedSize;
        try {
          inflater.push(piece.subarray(i, i + pushSize), last);
        } catch (e) {
          throw new InputError(this.name, `${what} is not valid deflate data (${(e as Error).message})`);
        }
      }
      pos += piece.length;
    }
    if (whole && overflow) throw new InputError(this.name, `${what} inflates to more than its declared ${entry.uncompressedSize} bytes (corrupt or a zip bomb)`);
    if (filled < want) throw new InputError(this.name, `${what} inflates to ${filled} bytes, fewer than its declared ${entry.uncompressedSize} (truncated?)`);
    return out;
  }
}

/** Finds the end-of-central-directory record (and its zip64 twin) in the archive's tail. */
async function readEnd(source: ByteSource): Promise<{ count: number; cdOffset: number; cdSize: number; cdLimit: number }> {
  const file = source.name;
  if (source.size < END_BYTES) throw new InputError(file, `is ${source.size} bytes: too short for a zip archive (truncated?)`);
  const tailStart = Math.max(0, source.size - END_BYTES - MAX_COMMENT);
  const tail = await source.read(tailStart, source.size - tailStart);
  const t = view(tail);
  let at = -1;
  for (let i = tail.length - END_BYTES; i >= 0; i--) {
    if (t.getUint32(i, true) === SIG_END && i + END_BYTES + t.getUint16(i + 20, true) <= tail.length) {
      at = i;
      break;
    }
  }
  if (at < 0) throw new InputError(file, 'has no zip end-of-central-directory record (truncated, or not a zip archive?)');
  const endOffset = tailStart + at;
  let count = t.getUint16(at + 10, true);
  let cdSize = t.getUint32(at + 12, true);
  let cdOffset = t.getUint32(at + 16, true);
  if (t.getUint16(at + 4, true) !== 0 || t.getUint16(at + 6, true) !== 0) throw new InputError(file, 'is a multi-part zip archive, which is not read');
  if (count !== 0xffff && cdSize !== 0xffffffff && cdOffset !== 0xffffffff) return { count, cdOffset, cdSize, cdLimit: endOffset };
  // zip64: a locator just before the end record points at the zip64 end record.
  if (endOffset < 20) throw new InputError(file, 'has a zip64 end record but no zip64 locator (corrupt)');
  const locator = view(await source.read(endOffset - 20, 20));
  if (locator.getUint32(0, true) !== SIG_ZIP64_LOCATOR) throw new InputError(file, 'has a zip64 end record but no zip64 locator (corrupt)');
  const end64Offset = u64(locator, 8, file, 'end record offset');
  if (end64Offset + 56 > endOffset - 20) throw new InputError(file, 'has a zip64 end record outside the archive (corrupt)');
  const end64 = view(await source.read(end64Offset, 56));
  if (end64.getUint32(0, true) !== SIG_ZIP64_END) throw new InputError(file, 'has no zip64 end record where its locator says (corrupt)');
  count = u64(end64, 32, file, 'member count');
  cdSize = u64(end64, 40, file, 'central directory size');
  cdOffset = u64(end64, 48, file, 'central directory offset');
  return { count, cdOffset, cdSize, cdLimit: end64Offset };
}

type CentralEntry = Omit<ZipEntry, 'dataStart'>;

function parseCentralDirectory(cd: Uint8Array, count: number, file: string): CentralEntry[] {
  const v = view(cd);
  const entries: CentralEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || v.getUint32(p, true) !== SIG_CENTRAL) {
      throw new InputError(file, `zip central directory ends after ${i} of its ${count} members (corrupt)`);
    }
    const flags = v.getUint16(p + 8, true);
    const method = v.getUint16(p + 10, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cd.length) throw new InputError(file, `zip central directory entry ${i} runs past the directory (corrupt)`);
    const name = decodeUtf8(cd.subarray(p + 46, p + 46 + nameLen), `${file} member name`);
    let compressedSize = v.getUint32(p + 20, true);
    let uncompressedSize = v.getUint32(p + 24, true);
    let localHeaderOffset = v.getUint32(p + 42, true);
    // zip64 extra field (id 1): the 64-bit values, in this order, of those stored as 0xFFFFFFFF.
    const extra = new DataView(cd.buffer, cd.byteOffset + p + 46 + nameLen, extraLen);
    for (let e = 0; e + 4 <= extraLen; ) {
      const id = extra.getUint16(e, true);
      const size = extra.getUint16(e + 2, true);
      if (e + 4 + size > extraLen) throw new InputError(file, `member "${name}" has a malformed extra field (corrupt)`);
      if (id === 1) {
        let q = e + 4;
        const next = (what: string): number => {
          if (q + 8 > e + 4 + size) throw new InputError(file, `member "${name}" has a zip64 field too short for its ${what} (corrupt)`);
          const n = u64(extra, q, file, `${what} of "${name}"`);
          q += 8;
          return n;
        };
        if (uncompressedSize === 0xffffffff) uncompressedSize = next('uncompressed size');
        if (compressedSize === 0xffffffff) compressedSize = next('compressed size');
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = next('header offset');
      }
      e += 4 + size;
    }
    if (flags & 1) throw new InputError(file, `member "${name}" is encrypted, which is not read`);
    if (method !== 0 && method !== 8) throw new InputError(file, `member "${name}" uses zip compression method ${method}; only stored (0) and deflated (8) are read`);
    if (method === 0 && compressedSize !== uncompressedSize) {
      throw new InputError(file, `member "${name}" is stored but declares ${compressedSize} stored and ${uncompressedSize} uncompressed bytes (corrupt)`);
    }
    if (method === 8 && uncompressedSize > compressedSize * MAX_DEFLATE_RATIO + 1024) {
      throw new InputError(file, `member "${name}" declares ${uncompressedSize} bytes from ${compressedSize} compressed, more than deflate can produce (corrupt or a zip bomb)`);
    }
    entries.push({ name, method, crc32: v.getUint32(p + 16, true), compressedSize, uncompressedSize, localHeaderOffset });
    p = end;
  }
  return entries;
}

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 (zip's polynomial); fflate does not export its own. */
export function crc32(bytes: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
