/**
 * safetensors: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.
 * The header is validated completely before any tensor is read (sizes, offsets inside the data
 * area, no overlaps, byte length = elements × dtype size), and tensors are then read lazily by
 * byte range: opening a 10 GB checkpoint reads only its header.
 */
import { InputError } from '../errors';
import type { ByteSource } from '../io';
import { decodeUtf8 } from '../io';
import { shapeString, sizeOf, type Tensor } from '../tensor';
import { assertDType, byteLength, decodeFloat, decodeNative, dtypeOfArray, type DType } from './dtypes';

/** The format allows 100 MB headers; anything larger is refused before it is read. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Absolute byte range in the file. */
  readonly begin: number;
  readonly end: number;
}

/** Anything that holds named tensors: one safetensors file, a sharded checkpoint, an npz. */
export interface TensorStore {
  readonly name: string;
  readonly metadata: Readonly<Record<string, string>>;
  names(): string[];
  info(name: string): { dtype: DType; shape: readonly number[] } | undefined;
  /** Decoded to float32 or float64. */
  readFloat(name: string, precision: 'float32'): Promise<Tensor<Float32Array>>;
  readFloat(name: string, precision: 'float64'): Promise<Tensor<Float64Array>>;
  readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>>;
  /** In its own element type (integers stay integers; f16/bf16/fp8 widen to float32). */
  readNative(name: string): Promise<Tensor>;
}

export class SafetensorsFile implements TensorStore {
  private constructor(
    private readonly source: ByteSource,
    private readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  get name(): string {
    return this.source.name;
  }

  static async open(source: ByteSource): Promise<SafetensorsFile> {
    const { tensors, metadata } = await readHeader(source);
    return new SafetensorsFile(source, tensors, metadata);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo | undefined {
    return this.tensors.get(name);
  }

  private require(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new InputError(this.name, `has no tensor named "${name}"`);
    return t;
  }

  async readFloat(name: string, precision: 'float32'): Promise<Tensor<Float32Array>>;
  async readFloat(name: string, precision: 'float64'): Promise<Tensor<Float64Array>>;
  async readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>>;
  async readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>> {
    const t = this.require(name);
    const bytes = await this.source.read(t.begin, t.end - t.begin);
    const Out = precision === 'float64' ? Float64Array : Float32Array;
    return { shape: t.shape, data: decodeFloat(t.dtype, bytes, sizeOf(t.shape), Out) };
  }

  async readNative(name: string): Promise<Tensor> {
    const t = this.require(name);
    const bytes = await this.source.read(t.begin, t.end - t.begin);
    return { shape: t.shape, data: decodeNative(t.dtype, bytes, sizeOf(t.shape)) };
  }
}

async function readHeader(source: ByteSource): Promise<{ tensors: Map<string, TensorInfo>; metadata: Record<string, string> }> {
  const file = source.name;
  if (source.size < 8) throw new InputError(file, `is ${source.size} bytes: too short for a safetensors header (truncated?)`);
  const lenBytes = await source.read(0, 8);
  const declared = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    throw new InputError(file, `declares a ${declared}-byte header; safetensors allows at most ${MAX_HEADER_BYTES} (not a safetensors file?)`);
  }
  const headerLen = Number(declared);
  if (headerLen < 2) throw new InputError(file, `declares a ${headerLen}-byte header: too short for a JSON object`);
  if (8 + headerLen > source.size) {
    throw new InputError(file, `declares a ${headerLen}-byte header but the file has only ${source.size - 8} bytes after the length (truncated?)`);
  }
  const text = decodeUtf8(await source.read(8, headerLen), `${file} header`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch {
    throw new InputError(file, 'header is not valid JSON (not a safetensors file?)');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new InputError(file, 'header is not a JSON object');
  }
  const dataStart = 8 + headerLen;
  const dataSize = source.size - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(entry, file);
      continue;
    }
    const t = parseEntry(name, entry, file, dataSize);
    tensors.set(name, { ...t, begin: dataStart + t.begin, end: dataStart + t.end });
  }
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.begin < prev.end) {
      throw new InputError(file, `tensors "${prev.name}" and "${cur.name}" overlap (bytes ${prev.begin - dataStart}-${prev.end - dataStart} and ${cur.begin - dataStart}-${cur.end - dataStart})`);
    }
  }
  return { tensors, metadata };
}

function parseMetadata(entry: unknown, file: string): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new InputError(file, '__metadata__ is not a JSON object');
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry)) {
    if (typeof v !== 'string') throw new InputError(file, `__metadata__["${k}"] is not a string`);
    out[k] = v;
  }
  return out;
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseEntry(name: string, entry: unknown, file: string, dataSize: number): Omit<TensorInfo, 'name'> & { name: string } {
  const what = `tensor "${name}"`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new InputError(file, `${what} is not a JSON object`);
  const e = entry as Record<string, unknown>;
  const dtype = assertDType(e.dtype, file, what);
  if (!Array.isArray(e.shape) || !e.shape.every(isIndex)) throw new InputError(file, `${what} has an invalid shape ${JSON.stringify(e.shape)}`);
  const shape = e.shape as number[];
  const offsets = e.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
    throw new InputError(file, `${what} has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new InputError(file, `${what} has data_offsets [${begin}, ${end}] that end before they begin`);
  if (end > dataSize) {
    throw new InputError(file, `${what} ends at byte ${end} of the data area, which has only ${dataSize} bytes (truncated?)`);
  }
  const count = sizeOf(shape);
  const expected = Number.isSafeInteger(count) ? byteLength(dtype, count) : null;
  if (expected === null || expected !== end - begin) {
    throw new InputError(file, `${what} is ${end - begin} bytes but ${dtype} ${shapeString(shape)} needs ${expected ?? 'an impossible number of'} bytes`);
  }
  return { name, dtype, shape, begin, end };
}

// --- writer --------------------------------------------------------------------------------------

export interface NamedTensor {
  readonly name: string;
  readonly tensor: Tensor;
}

/**
 * A safetensors file as pieces, in file order: the 8-byte length and the JSON header (padded so
 * tensor bytes are 8-byte aligned, like the Python writer), then each tensor's bytes as a view of
 * its own data. A writer that streams the pieces never holds the file in one buffer (a dump can be
 * larger than any one ArrayBuffer); encodeSafetensors joins them.
 */
export function safetensorsPieces(entries: readonly NamedTensor[], metadata: Record<string, string> = {}): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const parts: Uint8Array[] = [];
  for (const { name, tensor } of entries) {
    if (name === '__metadata__' || name in header) throw new Error(`encodeSafetensors: duplicate or reserved tensor name "${name}"`);
    const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    header[name] = { dtype: dtypeOfArray(tensor.data), shape: tensor.shape, data_offsets: [offset, offset + bytes.byteLength] };
    parts.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).byteLength) % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  return [length, jsonBytes, ...parts];
}

/** The safetensors file as one buffer (exports, and files small enough for one). */
export function encodeSafetensors(entries: readonly NamedTensor[], metadata: Record<string, string> = {}): Uint8Array {
  const pieces = safetensorsPieces(entries, metadata);
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
