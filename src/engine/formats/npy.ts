/**
 * NumPy .npy: a magic string, a version, a header length, a Python-literal dict
 * ({'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }) and the raw array bytes.
 * The dict is read by a small strict parser that accepts exactly that literal (strings, True/False,
 * tuples of integers) — never eval — and every size it declares is checked against the file
 * before anything is allocated. Fortran-order arrays are transposed to row-major and big-endian
 * ones byte-swapped, so callers always get the row-major little-endian tensor of tensor.ts.
 */
import { InputError, LimitError } from '../errors';
import { decodeUtf8, type ByteSource } from '../io';
import { shapeString, sizeOf, type Tensor, type TensorData } from '../tensor';
import { byteLength, decodeFloat, decodeNative, DTYPE_BITS, dtypeOfArray, type DType } from './dtypes';
import type { TensorStore } from './safetensors';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** Magic (6) + version (2) + the longest header-length field (4): enough to learn the header size. */
export const NPY_PREAMBLE_BYTES = 12;
/** numpy itself refuses headers over 10 000 bytes by default; a plain dtype never needs more. */
export const MAX_NPY_HEADER_BYTES = 1 << 20;
/** numpy's NPY_MAXDIMS (numpy 2). */
const MAX_DIMS = 64;
/** The largest ArrayBuffer Node and browsers allocate (2^32 bytes in V8). */
export const MAX_ARRAY_BYTES = 2 ** 32;

const latin1 = new TextDecoder('latin1');

/** Where the array is and how its bytes are laid out. */
export interface NpyLayout {
  readonly dtype: DType;
  readonly bigEndian: boolean;
  readonly fortranOrder: boolean;
  readonly shape: readonly number[];
  /** Bytes before the data: preamble + header. */
  readonly dataOffset: number;
  readonly dataBytes: number;
}

export function hasNpyMagic(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Reads the layout of an .npy of `totalSize` bytes through `peek(n)` (the first n bytes), so the
 * same code serves a file read by range and an npz member inflated only as far as its header.
 */
export async function readNpyLayout(peek: (n: number) => Promise<Uint8Array>, totalSize: number, file: string): Promise<NpyLayout> {
  if (totalSize < 10) throw new InputError(file, `is ${totalSize} bytes: too short for an .npy header (truncated?)`);
  const pre = await peek(Math.min(NPY_PREAMBLE_BYTES, totalSize));
  if (!hasNpyMagic(pre)) throw new InputError(file, 'does not start with the .npy magic "\\x93NUMPY" (not an .npy file?)');
  const major = pre[6];
  if (major < 1 || major > 3) throw new InputError(file, `is .npy format version ${major}.${pre[7]}; versions 1 to 3 are read`);
  if (major > 1 && totalSize < 12) throw new InputError(file, `is ${totalSize} bytes: too short for a version ${major} .npy header (truncated?)`);
  const view = new DataView(pre.buffer, pre.byteOffset, pre.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  if (headerLen > MAX_NPY_HEADER_BYTES) {
    throw new InputError(file, `declares a ${headerLen}-byte .npy header; at most ${MAX_NPY_HEADER_BYTES} are read (corrupt?)`);
  }
  const dataOffset = headerStart + headerLen;
  if (dataOffset > totalSize) {
    throw new InputError(file, `declares a ${headerLen}-byte .npy header but only ${totalSize - headerStart} bytes follow (truncated?)`);
  }
  const headerBytes = (await peek(dataOffset)).subarray(headerStart, dataOffset);
  // Versions 1 and 2 store the header in latin-1, version 3 in UTF-8.
  const text = major === 3 ? decodeUtf8(headerBytes, `${file} .npy header`) : latin1.decode(headerBytes);
  const dict = parseHeaderDict(text, file);
  const { dtype, bigEndian } = parseDescr(dict.descr, file);
  const count = sizeOf(dict.shape);
  const dataBytes = Number.isSafeInteger(count) ? byteLength(dtype, count) : null;
  const available = totalSize - dataOffset;
  if (dataBytes === null || dataBytes !== available) {
    const need = dataBytes === null ? 'an impossible number of' : String(dataBytes);
    const why = dataBytes !== null && dataBytes > available ? ' (truncated?)' : '';
    throw new InputError(file, `has ${available} data bytes but ${dict.descr} ${shapeString(dict.shape)} needs ${need}${why}`);
  }
  return { dtype, bigEndian, fortranOrder: dict.fortranOrder, shape: dict.shape, dataOffset, dataBytes };
}

// --- the header dict --------------------------------------------------------------------------

interface HeaderDict {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
}

type Literal = string | boolean | number[];

/**
 * Parses exactly the literal numpy writes: a dict of the three keys 'descr' (a string),
 * 'fortran_order' (True/False) and 'shape' (a tuple of non-negative integers), in any order, with
 * optional trailing commas, then padding. Anything else — expressions, calls, other keys — is refused.
 */
export function parseHeaderDict(text: string, file: string): HeaderDict {
  let pos = 0;
  const fail = (what: string): never => {
    throw new InputError(file, `.npy header ${what} at character ${pos} (corrupt or not written by numpy?)`);
  };
  const skipSpace = () => {
    while (pos < text.length && ' \t\r\n'.includes(text[pos])) pos++;
  };
  const expect = (ch: string) => {
    skipSpace();
    if (text[pos] !== ch) fail(`expected "${ch}"`);
    pos++;
  };
  const peekIs = (ch: string) => {
    skipSpace();
    return text[pos] === ch;
  };
  const string = (): string => {
    const quote = text[pos];
    const end = text.indexOf(quote, pos + 1);
    if (end < 0) fail('has an unterminated string');
    const s = text.slice(pos + 1, end);
    if (s.includes('\\')) fail('has an escape sequence in a string');
    pos = end + 1;
    return s;
  };
  const integer = (): number => {
    const start = pos;
    while (pos < text.length && text[pos] >= '0' && text[pos] <= '9') pos++;
    if (pos === start) fail('expected an integer');
    const n = Number(text.slice(start, pos));
    if (text[pos] === 'L') pos++; // Python 2 long literal
    if (!Number.isSafeInteger(n)) fail(`has dimension ${text.slice(start, pos)}, which is too large`);
    return n;
  };
  const tuple = (): number[] => {
    pos++; // (
    const dims: number[] = [];
    let trailingComma = false;
    while (!peekIs(')')) {
      if (dims.length === MAX_DIMS) fail(`has more than ${MAX_DIMS} dimensions`);
      dims.push(integer());
      trailingComma = !peekIs(')');
      if (trailingComma) expect(',');
    }
    // Python needs a trailing comma for a 1-tuple: "(3)" is the integer 3, not a shape.
    if (dims.length === 1 && !trailingComma) fail('has a shape that is not a tuple');
    pos++;
    return dims;
  };
  const value = (): Literal => {
    skipSpace();
    const ch = text[pos];
    if (ch === "'" || ch === '"') return string();
    if (ch === '(') return tuple();
    for (const [word, v] of [['True', true], ['False', false]] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return v;
      }
    }
    return fail('has a value that is not a string, True/False or a tuple of integers');
  };

  const entries = new Map<string, Literal>();
  expect('{');
  while (!peekIs('}')) {
    if (text[pos] !== "'" && text[pos] !== '"') fail('expected a quoted key');
    const key = string();
    if (!['descr', 'fortran_order', 'shape'].includes(key)) fail(`has unexpected key '${key}'`);
    if (entries.has(key)) fail(`repeats key '${key}'`);
    expect(':');
    entries.set(key, value());
    if (!peekIs('}')) expect(',');
  }
  pos++;
  skipSpace();
  if (pos !== text.length) fail('has text after the dict');
  const descr = entries.get('descr');
  const fortranOrder = entries.get('fortran_order');
  const shape = entries.get('shape');
  if (typeof descr !== 'string') {
    // numpy writes a list of fields here for structured dtypes.
    throw new InputError(file, `.npy header has no 'descr' string (structured dtypes are not read)`);
  }
  if (typeof fortranOrder !== 'boolean') throw new InputError(file, ".npy header has no 'fortran_order' True/False");
  if (!Array.isArray(shape)) throw new InputError(file, ".npy header has no 'shape' tuple");
  return { descr, fortranOrder, shape };
}

const KIND_TO_DTYPE: Readonly<Record<string, DType>> = {
  f2: 'F16', f4: 'F32', f8: 'F64',
  i1: 'I8', i2: 'I16', i4: 'I32', i8: 'I64',
  u1: 'U8', u2: 'U16', u4: 'U32', u8: 'U64',
  b1: 'BOOL',
};

/** '<f4' → F32 little-endian. '|' (not applicable) and '=' (native) are read as little-endian. */
function parseDescr(descr: string, file: string): { dtype: DType; bigEndian: boolean } {
  const order = descr[0];
  const dtype = KIND_TO_DTYPE[descr.slice(1)];
  if (!'<>|='.includes(order) || descr.length !== 3 || !dtype) {
    const hint = descr.includes('O') ? ' (an object array: pickled Python objects are never loaded)' : '';
    throw new InputError(file, `has dtype '${descr}', which is not read; supported: f2 f4 f8 i1-i8 u1-u8 b1${hint}`);
  }
  return { dtype, bigEndian: order === '>' && DTYPE_BITS[dtype] > 8 };
}

// --- decoding ------------------------------------------------------------------------------------

function reverseElementBytes(bytes: Uint8Array, itemSize: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += itemSize) {
    for (let k = 0; k < itemSize; k++) out[i + k] = bytes[i + itemSize - 1 - k];
  }
  return out;
}

/**
 * Column-major bytes → row-major bytes. Walks the output in row-major order with an odometer
 * over the indices and keeps the matching column-major input offset up to date incrementally.
 */
function fortranToRowMajor(bytes: Uint8Array, shape: readonly number[], itemSize: number): Uint8Array {
  const nd = shape.length;
  const count = sizeOf(shape);
  if (nd < 2 || count === 0) return bytes;
  const colStride: number[] = [];
  let s = itemSize;
  for (let d = 0; d < nd; d++) {
    colStride.push(s);
    s *= shape[d];
  }
  const out = new Uint8Array(bytes.length);
  const idx = new Array<number>(nd).fill(0);
  let src = 0;
  for (let dst = 0; dst < bytes.length; dst += itemSize) {
    for (let k = 0; k < itemSize; k++) out[dst + k] = bytes[src + k];
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) {
        src += colStride[d];
        break;
      }
      src -= colStride[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
  return out;
}

/** Refuses decodes whose output could not be allocated, before allocating it. */
export function assertAllocatable(file: string, what: string, bytes: number): void {
  if (bytes > MAX_ARRAY_BYTES) {
    throw new LimitError(file, `${what} needs ${bytes} bytes decoded, more than the ${MAX_ARRAY_BYTES} one JavaScript array can hold; save it in smaller pieces`);
  }
}

/** The data bytes of an .npy as a row-major tensor: native element type, or float32/float64. */
export function decodeNpyData(layout: NpyLayout, data: Uint8Array, as: 'native'): Tensor;
export function decodeNpyData(layout: NpyLayout, data: Uint8Array, as: 'float32' | 'float64'): Tensor<Float32Array | Float64Array>;
export function decodeNpyData(layout: NpyLayout, data: Uint8Array, as: 'native' | 'float32' | 'float64'): Tensor {
  const itemSize = DTYPE_BITS[layout.dtype] / 8;
  let bytes = data.subarray(0, layout.dataBytes);
  if (layout.bigEndian) bytes = reverseElementBytes(bytes, itemSize);
  if (layout.fortranOrder) bytes = fortranToRowMajor(bytes, layout.shape, itemSize);
  const count = sizeOf(layout.shape);
  const values: TensorData =
    as === 'native' ? decodeNative(layout.dtype, bytes, count) : decodeFloat(layout.dtype, bytes, count, as === 'float64' ? Float64Array : Float32Array);
  return { shape: [...layout.shape], data: values };
}

/** Bytes a decode of `layout` allocates at most (the widest output is float64). */
export function decodedBytes(layout: NpyLayout, as: 'native' | 'float32' | 'float64'): number {
  const count = sizeOf(layout.shape);
  return Math.max(layout.dataBytes, count * (as === 'float32' ? 4 : 8));
}

// --- the store ----------------------------------------------------------------------------------

/** The file's base name without its extension: the tensor name of a single .npy. */
export function baseName(path: string): string {
  const file = path.slice(Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1);
  const dot = file.lastIndexOf('.');
  return dot > 0 ? file.slice(0, dot) : file;
}

/** One .npy as a TensorStore holding a single tensor, read lazily by byte range. */
export class NpyFile implements TensorStore {
  readonly metadata: Readonly<Record<string, string>> = {};

  private constructor(
    private readonly source: ByteSource,
    private readonly tensorName: string,
    readonly layout: NpyLayout,
  ) {}

  get name(): string {
    return this.source.name;
  }

  static async open(source: ByteSource, tensorName = baseName(source.name)): Promise<NpyFile> {
    const layout = await readNpyLayout((n) => source.read(0, n), source.size, source.name);
    return new NpyFile(source, tensorName, layout);
  }

  names(): string[] {
    return [this.tensorName];
  }

  info(name: string): { dtype: DType; shape: readonly number[] } | undefined {
    return name === this.tensorName ? { dtype: this.layout.dtype, shape: this.layout.shape } : undefined;
  }

  private async data(name: string, as: 'native' | 'float32' | 'float64'): Promise<Uint8Array> {
    if (name !== this.tensorName) throw new InputError(this.name, `has no tensor named "${name}" (its only tensor is "${this.tensorName}")`);
    assertAllocatable(this.name, `tensor "${name}"`, decodedBytes(this.layout, as));
    return this.source.read(this.layout.dataOffset, this.layout.dataBytes);
  }

  async readFloat(name: string, precision: 'float32'): Promise<Tensor<Float32Array>>;
  async readFloat(name: string, precision: 'float64'): Promise<Tensor<Float64Array>>;
  async readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>>;
  async readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>> {
    return decodeNpyData(this.layout, await this.data(name, precision), precision);
  }

  async readNative(name: string): Promise<Tensor> {
    return decodeNpyData(this.layout, await this.data(name, 'native'), 'native');
  }
}

// --- writer ----------------------------------------------------------------------------------------

/** The .npy descr a typed array is written as (little-endian; bytes have no order). */
const DESCR: Partial<Record<DType, string>> = {
  F64: '<f8', F32: '<f4', I64: '<i8', U64: '<u8', I32: '<i4', U32: '<u4', I16: '<i2', U16: '<u2', I8: '|i1', U8: '|u1',
};

function descrOf(data: TensorData): string {
  return DESCR[dtypeOfArray(data)] ?? '|u1';
}

/**
 * A version 1.0, C-order, little-endian .npy of `tensor` (how the extension exports a slice).
 * Like numpy, pads the header with spaces and a newline so the data starts at a multiple of 64.
 */
export function encodeNpy(tensor: Tensor): Uint8Array {
  const dims = tensor.shape.join(', ');
  const shape = tensor.shape.length === 1 ? `(${dims},)` : `(${dims})`;
  const dict = `{'descr': '${descrOf(tensor.data)}', 'fortran_order': False, 'shape': ${shape}, }`;
  const unpadded = 10 + dict.length + 1;
  const header = dict + ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  if (header.length > 0xffff) throw new Error(`encodeNpy: shape ${shapeString(tensor.shape)} needs a header longer than version 1 allows`);
  const data = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(data, 10 + header.length);
  return out;
}
