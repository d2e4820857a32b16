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

// --- pickles and torch.save files -----------------------------------------------------------------

const le = (n: number, width: 2 | 4 | 8): number[] => {
  const out = new Uint8Array(width);
  const v = new DataView(out.buffer);
  if (width === 2) v.setUint16(0, n, true);
  else if (width === 4) v.setInt32(0, n, true);
  else v.setBigUint64(0, BigInt(n), true);
  return [...out];
};

/**
 * A pickle assembler: each entry is one opcode with its operands, as bytes, so tests can write
 * exactly the pickle they mean (pickle(pk.proto(), pk.emptyDict, pk.stop)).
 */
export const pk = {
  proto: (v = 2) => [0x80, v],
  mark: [0x28], stop: [0x2e], none: [0x4e], newTrue: [0x88], newFalse: [0x89],
  emptyTuple: [0x29], emptyList: [0x5d], emptyDict: [0x7d], emptySet: [0x8f],
  tuple: [0x74], tuple1: [0x85], tuple2: [0x86], tuple3: [0x87],
  append: [0x61], appends: [0x65], setitem: [0x73], setitems: [0x75],
  reduce: [0x52], build: [0x62], newobj: [0x81], binpersid: [0x51],
  int: (n: number) => (n >= 0 && n < 256 ? [0x4b, n] : n >= 0 && n < 65536 ? [0x4d, ...le(n, 2)] : [0x4a, ...le(n, 4)]),
  /** LONG1: little-endian two's complement in as few bytes as hold the sign. */
  long1: (n: bigint) => {
    const bytes: number[] = [];
    let v = n;
    const signFits = () => (v === 0n && !(bytes[bytes.length - 1] & 0x80)) || (v === -1n && bytes[bytes.length - 1] & 0x80);
    do {
      bytes.push(Number(BigInt.asUintN(8, v)));
      v >>= 8n;
    } while (!signFits());
    return [0x8a, bytes.length, ...bytes];
  },
  float: (x: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, false);
    return [0x47, ...b];
  },
  str: (s: string) => {
    const b = utf8.encode(s);
    return [0x58, ...le(b.length, 4), ...b];
  },
  shortBinstring: (s: string) => [0x55, s.length, ...ascii(s)],
  global: (module: string, name: string) => [0x63, ...ascii(`${module}\n${name}\n`)],
  binput: (i: number) => [0x71, i],
  longBinput: (i: number) => [0x72, ...le(i, 4)],
  binget: (i: number) => [0x68, i],
  longBinget: (i: number) => [0x6a, ...le(i, 4)],
};

export function pickle(...ops: readonly (readonly number[])[]): Uint8Array {
  return Uint8Array.from(ops.flat());
}

/** A tensor of a hand-built state dict: a view of one storage, as torch.save pickles it. */
export interface PickledTensor {
  readonly name: string;
  readonly storage: string;
  /** The storage class: 'FloatStorage', 'BFloat16Storage', … (any name, to write broken ones). */
  readonly storageClass: string;
  readonly numel: number;
  readonly offset?: number;
  readonly shape: readonly number[];
  /** Row-major when absent. */
  readonly stride?: readonly number[];
  /** Pickle it as an nn.Parameter (_rebuild_parameter around the tensor). */
  readonly parameter?: boolean;
}

const rowMajor = (shape: readonly number[]) => shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
const intTuple = (xs: readonly number[]) => [pk.mark, ...xs.map(pk.int), pk.tuple];

/**
 * The state-dict pickle torch.save writes: {name: _rebuild_tensor_v2((persistent id), offset, size,
 * stride, False, OrderedDict()), …}. `legacy` adds the sixth persistent-id item (view metadata).
 */
export function stateDictPickle(tensors: readonly PickledTensor[], opts: { legacy?: boolean } = {}): Uint8Array {
  const ops: (readonly number[])[] = [pk.proto(2), pk.emptyDict, pk.mark];
  for (const t of tensors) {
    const pid = [pk.mark, pk.str('storage'), pk.global('torch', t.storageClass), pk.str(t.storage), pk.str('cpu'), pk.int(t.numel), ...(opts.legacy ? [pk.none] : []), pk.tuple];
    const rebuild = [
      pk.global('torch._utils', '_rebuild_tensor_v2'), pk.mark, ...pid, pk.binpersid, pk.int(t.offset ?? 0), ...intTuple(t.shape), ...intTuple(t.stride ?? rowMajor(t.shape)),
      pk.newFalse, pk.global('collections', 'OrderedDict'), pk.emptyTuple, pk.reduce, pk.tuple, pk.reduce,
    ];
    const value = t.parameter ? [pk.global('torch._utils', '_rebuild_parameter'), pk.mark, ...rebuild, pk.newFalse, pk.global('collections', 'OrderedDict'), pk.emptyTuple, pk.reduce, pk.tuple, pk.reduce] : rebuild;
    ops.push(pk.str(t.name), ...value);
  }
  ops.push(pk.setitems, pk.stop);
  return pickle(...ops);
}

/** torch.save's zip layout: <prefix>/data.pkl, <prefix>/byteorder, <prefix>/data/<key> stored. */
export function torchZip(dataPkl: Uint8Array, storages: Readonly<Record<string, Uint8Array>>, opts: { prefix?: string; method?: 0 | 8; byteorder?: string } = {}): Uint8Array {
  const prefix = opts.prefix ?? 'archive';
  return buildZip([
    { name: `${prefix}/data.pkl`, data: dataPkl },
    { name: `${prefix}/byteorder`, data: ascii(opts.byteorder ?? 'little') },
    ...Object.entries(storages).map(([key, data]) => ({ name: `${prefix}/data/${key}`, data, method: opts.method })),
    { name: `${prefix}/version`, data: ascii('3\n') },
  ]);
}

/** The legacy (torch < 1.6) layout: magic, protocol, system info, state dict, keys, then counted storages. */
export function torchLegacy(dataPkl: Uint8Array, storages: readonly { key: string; elements: number; data: Uint8Array }[], opts: { littleEndian?: boolean } = {}): Uint8Array {
  const sysInfo = pickle(
    pk.proto(2), pk.emptyDict, pk.mark, pk.str('protocol_version'), pk.int(1001), pk.str('little_endian'), opts.littleEndian === false ? pk.newFalse : pk.newTrue,
    pk.str('type_sizes'), pk.emptyDict, pk.mark, pk.str('short'), pk.int(2), pk.str('int'), pk.int(4), pk.str('long'), pk.int(4), pk.setitems, pk.setitems, pk.stop,
  );
  const keys = pickle(pk.proto(2), pk.emptyList, pk.mark, ...storages.map((s) => pk.str(s.key)), pk.appends, pk.stop);
  return concat([
    pickle(pk.proto(2), pk.long1(0x1950a86a20f9469cfc6cn), pk.stop),
    pickle(pk.proto(2), pk.int(1001), pk.stop),
    sysInfo,
    dataPkl,
    keys,
    ...storages.flatMap((s) => [Uint8Array.from(le(s.elements, 8)), s.data]),
  ]);
}
