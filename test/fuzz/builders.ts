/**
 * Small byte builders for the files the readers take — .npy, zip/.npz and safetensors — with every
 * field overridable, so tests and the fuzz generators can write both valid files and precisely
 * broken ones (a wrong length here, a lying size there) without any external tool.
 */
import { deflateSync } from 'fflate';
import { crc32 } from '../../src/engine/formats/zipArchive';

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
const utf8 = new TextEncoder();

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// --- .npy -------------------------------------------------------------------------------------

/** The dict numpy writes, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (3,), }. */
export function npyDict(descr: string, fortranOrder: boolean, shape: readonly number[]): string {
  const dims = shape.join(', ');
  return `{'descr': '${descr}', 'fortran_order': ${fortranOrder ? 'True' : 'False'}, 'shape': (${dims}${shape.length === 1 ? ',' : ''}), }`;
}

/**
 * An .npy of the given header text and data: magic, version, header length (u16 for v1, u32
 * after), the header padded like numpy (spaces + newline to a multiple of 64) unless `raw`.
 */
export function npyBytes(header: string, data: Uint8Array, opts: { version?: 1 | 2 | 3; raw?: boolean; declaredLength?: number } = {}): Uint8Array {
  const version = opts.version ?? 1;
  const pre = version === 1 ? 10 : 12;
  const text = opts.raw ? header : header + ' '.repeat((64 - ((pre + header.length + 1) % 64)) % 64) + '\n';
  const headerBytes = version === 3 ? utf8.encode(text) : ascii(text);
  const preamble = new Uint8Array(pre);
  preamble.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const len = opts.declaredLength ?? headerBytes.length;
  const v = new DataView(preamble.buffer);
  if (version === 1) v.setUint16(8, len, true);
  else v.setUint32(8, len, true);
  return concat([preamble, headerBytes, data]);
}

/** numpy type codes ('f4', 'u2', 'b1', …) → element size. */
export const NPY_CODES = ['f2', 'f4', 'f8', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'b1'] as const;
export type NpyCode = (typeof NPY_CODES)[number];

export function itemSize(code: NpyCode): number {
  return Number(code[1]);
}

/** binary16 bits of a value that f16 represents exactly (tests use small integers and halves). */
export function f16Bits(x: number): number {
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  const e = Math.floor(Math.log2(a));
  if (e < -14) return sign | Math.round(a / 2 ** -24);
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

/** Elements in row-major order → bytes of one dtype, either byte order. */
export function elementBytes(code: NpyCode, values: readonly number[], bigEndian = false): Uint8Array {
  const size = itemSize(code);
  const out = new Uint8Array(values.length * size);
  const v = new DataView(out.buffer);
  const le = !bigEndian;
  values.forEach((x, i) => {
    const at = i * size;
    switch (code) {
      case 'f2': v.setUint16(at, f16Bits(x), le); break;
      case 'f4': v.setFloat32(at, x, le); break;
      case 'f8': v.setFloat64(at, x, le); break;
      case 'i1': v.setInt8(at, x); break;
      case 'i2': v.setInt16(at, x, le); break;
      case 'i4': v.setInt32(at, x, le); break;
      case 'i8': v.setBigInt64(at, BigInt(x), le); break;
      case 'u1': v.setUint8(at, x); break;
      case 'u2': v.setUint16(at, x, le); break;
      case 'u4': v.setUint32(at, x, le); break;
      case 'u8': v.setBigUint64(at, BigInt(x), le); break;
      case 'b1': v.setUint8(at, x ? 1 : 0); break;
    }
  });
  return out;
}

/** Row-major values reordered the way a Fortran-order array stores them (first index fastest). */
export function toFortranOrder<T>(values: readonly T[], shape: readonly number[]): T[] {
  const out: T[] = [];
  const n = values.length;
  const rowStride = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  for (let f = 0; f < n; f++) {
    let rest = f;
    let rowIndex = 0;
    for (let d = 0; d < shape.length; d++) {
      rowIndex += (rest % shape[d]) * rowStride[d];
      rest = Math.floor(rest / shape[d]);
    }
    out.push(values[rowIndex]);
  }
  return out;
}

// --- zip ----------------------------------------------------------------------------------------

export interface ZipMemberSpec {
  readonly name: string;
  readonly data: Uint8Array;
  readonly method?: 0 | 8;
  /** Overrides, to write lying archives. */
  readonly crc?: number;
  readonly uncompressedSize?: number;
  readonly compressedSize?: number;
  readonly flags?: number;
  /** Write the member's sizes and offset as zip64 extra fields (as numpy does for its locals). */
  readonly zip64?: boolean;
  /** Point the directory entry at another member's local header (overlap). */
  readonly localHeaderOffset?: number;
}

/** A zip archive; `zip64End` adds the zip64 end record and locator that archives over 4 GB need. */
export function buildZip(members: readonly ZipMemberSpec[], opts: { zip64End?: boolean } = {}): Uint8Array {
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const m of members) {
    const method = m.method ?? 0;
    const body = method === 8 ? deflateSync(m.data) : m.data;
    const name = utf8.encode(m.name);
    const crc = m.crc ?? crc32(m.data);
    const usize = m.uncompressedSize ?? m.data.length;
    const csize = m.compressedSize ?? body.length;
    const headerOffset = m.localHeaderOffset ?? offset;
    const extra = new Uint8Array(m.zip64 ? 28 : 0);
    if (m.zip64) {
      const e = new DataView(extra.buffer);
      e.setUint16(0, 1, true);
      e.setUint16(2, 24, true);
      e.setBigUint64(4, BigInt(usize), true);
      e.setBigUint64(12, BigInt(csize), true);
      e.setBigUint64(20, BigInt(headerOffset), true);
    }
    const local = new Uint8Array(30);
    const l = new DataView(local.buffer);
    l.setUint32(0, 0x04034b50, true);
    l.setUint16(4, 45, true);
    l.setUint16(6, (m.flags ?? 0) | 0x800, true);
    l.setUint16(8, method, true);
    l.setUint32(14, crc, true);
    l.setUint32(18, m.zip64 ? 0xffffffff : csize, true);
    l.setUint32(22, m.zip64 ? 0xffffffff : usize, true);
    l.setUint16(26, name.length, true);
    l.setUint16(28, extra.length, true);
    const central = new Uint8Array(46);
    const c = new DataView(central.buffer);
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 45, true);
    c.setUint16(6, 45, true);
    c.setUint16(8, (m.flags ?? 0) | 0x800, true);
    c.setUint16(10, method, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, m.zip64 ? 0xffffffff : csize, true);
    c.setUint32(24, m.zip64 ? 0xffffffff : usize, true);
    c.setUint16(28, name.length, true);
    c.setUint16(30, extra.length, true);
    c.setUint32(42, m.zip64 ? 0xffffffff : headerOffset, true);
    locals.push(local, name, extra, body);
    centrals.push(central, name, extra);
    offset += local.length + name.length + extra.length + body.length;
  }
  const cd = concat(centrals);
  const tail: Uint8Array[] = [];
  if (opts.zip64End) {
    const end64 = new Uint8Array(56);
    const z = new DataView(end64.buffer);
    z.setUint32(0, 0x06064b50, true);
    z.setBigUint64(4, 44n, true);
    z.setUint16(12, 45, true);
    z.setUint16(14, 45, true);
    z.setBigUint64(24, BigInt(members.length), true);
    z.setBigUint64(32, BigInt(members.length), true);
    z.setBigUint64(40, BigInt(cd.length), true);
    z.setBigUint64(48, BigInt(offset), true);
    const locator = new Uint8Array(20);
    const lv = new DataView(locator.buffer);
    lv.setUint32(0, 0x07064b50, true);
    lv.setBigUint64(8, BigInt(offset + cd.length), true);
    lv.setUint32(16, 1, true);
    tail.push(end64, locator);
  }
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, opts.zip64End ? 0xffff : members.length, true);
  ev.setUint16(10, opts.zip64End ? 0xffff : members.length, true);
  ev.setUint32(12, opts.zip64End ? 0xffffffff : cd.length, true);
  ev.setUint32(16, opts.zip64End ? 0xffffffff : offset, true);
  return concat([...locals, cd, ...tail, end]);
}

// --- safetensors ----------------------------------------------------------------------------------

/** A safetensors file from a header (an object, or raw text to write broken JSON) and data bytes. */
export function safetensorsBytes(header: unknown, data: Uint8Array = new Uint8Array(0), declaredLength?: number): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const json = utf8.encode(text);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(declaredLength ?? json.length), true);
  return concat([len, json, data]);
}
