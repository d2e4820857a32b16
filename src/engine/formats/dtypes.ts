/**
 * Element types of the tensor formats we read, and their decoding to float32/float64.
 * Low-precision floats (f16, bf16, fp8) have no typed array in JS: they are decoded through
 * tables or bit manipulation. Everything is little-endian unless a reader says otherwise.
 */
import { InputError } from '../errors';
import type { TensorData } from '../tensor';

export type DType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2' | 'F8_E8M0' | 'F4'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/** Bits per element: F4 packs two elements per byte. */
export const DTYPE_BITS: Readonly<Record<DType, number>> = {
  F64: 64, F32: 32, F16: 16, BF16: 16, F8_E4M3: 8, F8_E5M2: 8, F8_E8M0: 8, F4: 4,
  I64: 64, I32: 32, I16: 16, I8: 8, U64: 64, U32: 32, U16: 16, U8: 8, BOOL: 8,
};

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BITS, s);
}

export function isFloatDType(d: DType): boolean {
  return d.startsWith('F') || d === 'BF16';
}

/** Bytes that `count` elements of `dtype` occupy; null when F4 would need half a byte. */
export function byteLength(dtype: DType, count: number): number | null {
  const bits = DTYPE_BITS[dtype] * count;
  return bits % 8 === 0 ? bits / 8 : null;
}

// --- scalar decoders ---------------------------------------------------------------------------

const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = decodeMinifloat(h, 5, 10, true);
  return t;
})();

/**
 * Decodes a sign/exponent/mantissa float of the given widths (IEEE-style bias).
 * `ieeeSpecials`: the all-ones exponent means Inf/NaN (f16, e5m2). E4M3 "fn" has no Inf and only
 * S.1111.111 is NaN — the format in safetensors and PyTorch (float8_e4m3fn).
 */
function decodeMinifloat(bits: number, expBits: number, manBits: number, ieeeSpecials: boolean): number {
  const sign = (bits >> (expBits + manBits)) & 1 ? -1 : 1;
  const exp = (bits >> manBits) & ((1 << expBits) - 1);
  const man = bits & ((1 << manBits) - 1);
  const bias = (1 << (expBits - 1)) - 1;
  const maxExp = (1 << expBits) - 1;
  if (ieeeSpecials && exp === maxExp) return man === 0 ? sign * Infinity : NaN;
  if (!ieeeSpecials && exp === maxExp && man === (1 << manBits) - 1) return NaN;
  if (exp === 0) return sign * man * 2 ** (1 - bias - manBits);
  return sign * (1 + man / (1 << manBits)) * 2 ** (exp - bias);
}

export function f16ToFloat(h: number): number {
  return F16_TABLE[h & 0xffff];
}

const f32Scratch = new Float32Array(1);
const f32ScratchBits = new Uint32Array(f32Scratch.buffer);

/**
 * The f16 bits nearest to the float32 value x, ties to even; overflow goes to ±Inf, NaN stays
 * NaN. The inverse of f16ToFloat: the native WebGPU engine stores weights as packed f16 pairs.
 * (reference/precision.ts rounds float64 values to the f16 grid for the numerics' emulation; it
 * never needs the bits. The tests hold each against the other.)
 */
export function floatToF16(x: number): number {
  f32Scratch[0] = x;
  const b = f32ScratchBits[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  // Normal: keep 10 of 23 mantissa bits. Subnormal (e ≤ 0): the implicit 1 joins and more bits go.
  const full = e > 0 ? man : man | 0x800000;
  const drop = e > 0 ? 13 : 14 - e;
  if (drop > 24) return sign;
  const kept = full >>> drop;
  const rest = full & ((1 << drop) - 1);
  const mid = 1 << (drop - 1);
  const rounded = kept + (rest > mid || (rest === mid && kept & 1) ? 1 : 0);
  // A carry out of the mantissa moves into the exponent, as the bit layout intends (up to Inf).
  return sign | ((e > 0 ? e << 10 : 0) + rounded);
}

const bf16Scratch = new Float32Array(1);
const bf16ScratchBits = new Uint32Array(bf16Scratch.buffer);
export function bf16ToFloat(b: number): number {
  bf16ScratchBits[0] = (b & 0xffff) << 16;
  return bf16Scratch[0];
}

const E4M3_TABLE = Float32Array.from({ length: 256 }, (_, b) => decodeMinifloat(b, 4, 3, false));
const E5M2_TABLE = Float32Array.from({ length: 256 }, (_, b) => decodeMinifloat(b, 5, 2, true));
/** E8M0: an unsigned power of two (MX scale format); 0xFF is NaN. */
const E8M0_TABLE = Float32Array.from({ length: 256 }, (_, b) => (b === 255 ? NaN : 2 ** (b - 127)));
/** F4 E2M1 (MX): no Inf/NaN; the low nibble holds the first element. */
const E2M1_TABLE = Float32Array.from({ length: 16 }, (_, b) => {
  const sign = b & 8 ? -1 : 1;
  const exp = (b >> 1) & 3;
  const man = b & 1;
  return sign * (exp === 0 ? man * 0.5 : (1 + man / 2) * 2 ** (exp - 1));
});

// --- array decoders ------------------------------------------------------------------------------

/** Copies into a fresh, aligned buffer so a typed array can view it (file offsets are unaligned). */
function aligned(bytes: Uint8Array): ArrayBuffer {
  // new Uint8Array(view) copies; bytes.slice() would not when a ByteSource hands back a Node Buffer.
  return new Uint8Array(bytes).buffer as ArrayBuffer;
}

/**
 * The native typed array for `dtype` (float formats without a JS type are widened to Float32Array).
 * `count` elements are decoded from little-endian `bytes`.
 */
export function decodeNative(dtype: DType, bytes: Uint8Array, count: number): TensorData {
  switch (dtype) {
    case 'F64': return new Float64Array(aligned(bytes), 0, count);
    case 'F32': return new Float32Array(aligned(bytes), 0, count);
    case 'I64': return new BigInt64Array(aligned(bytes), 0, count);
    case 'U64': return new BigUint64Array(aligned(bytes), 0, count);
    case 'I32': return new Int32Array(aligned(bytes), 0, count);
    case 'U32': return new Uint32Array(aligned(bytes), 0, count);
    case 'I16': return new Int16Array(aligned(bytes), 0, count);
    case 'U16': return new Uint16Array(aligned(bytes), 0, count);
    case 'I8': return new Int8Array(aligned(bytes), 0, count);
    case 'U8': return new Uint8Array(aligned(bytes), 0, count);
    case 'BOOL': return Uint8Array.from(bytes.subarray(0, count), (b) => (b ? 1 : 0));
    default: return decodeFloat(dtype, bytes, count, Float32Array);
  }
}

type FloatCtor = Float32ArrayConstructor | Float64ArrayConstructor;

/** Decodes any dtype to float32 or float64 (integers convert exactly up to 2^24 / 2^53). */
export function decodeFloat<C extends FloatCtor>(dtype: DType, bytes: Uint8Array, count: number, Out: C): InstanceType<C> {
  const out = new Out(count) as InstanceType<C>;
  switch (dtype) {
    case 'F16': {
      const v = new Uint16Array(aligned(bytes.subarray(0, count * 2)));
      for (let i = 0; i < count; i++) out[i] = F16_TABLE[v[i]];
      return out;
    }
    case 'BF16': {
      const v = new Uint16Array(aligned(bytes.subarray(0, count * 2)));
      // bf16 is the top half of an f32: into a float32 output, the bits go straight in (no
      // second count-long buffer: a 0.5 GB embedding would need another 0.5 GB).
      if (out instanceof Float32Array) {
        const w = new Uint32Array(out.buffer, out.byteOffset, count);
        for (let i = 0; i < count; i++) w[i] = v[i] << 16;
        return out;
      }
      const word = new Uint32Array(1);
      const f = new Float32Array(word.buffer);
      for (let i = 0; i < count; i++) {
        word[0] = v[i] << 16;
        out[i] = f[0];
      }
      return out;
    }
    case 'F8_E4M3': return lookup(bytes, count, E4M3_TABLE, out);
    case 'F8_E5M2': return lookup(bytes, count, E5M2_TABLE, out);
    case 'F8_E8M0': return lookup(bytes, count, E8M0_TABLE, out);
    case 'F4':
      for (let i = 0; i < count; i++) out[i] = E2M1_TABLE[(bytes[i >> 1] >> ((i & 1) * 4)) & 15];
      return out;
    default: {
      const native = decodeNative(dtype, bytes, count);
      for (let i = 0; i < count; i++) out[i] = Number(native[i]);
      return out;
    }
  }
}

function lookup<T extends Float32Array | Float64Array>(bytes: Uint8Array, count: number, table: Float32Array, out: T): T {
  for (let i = 0; i < count; i++) out[i] = table[bytes[i]];
  return out;
}

/** The safetensors dtype a typed array is written as. */
export function dtypeOfArray(data: TensorData): DType {
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof BigUint64Array) return 'U64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Uint32Array) return 'U32';
  if (data instanceof Int16Array) return 'I16';
  if (data instanceof Uint16Array) return 'U16';
  if (data instanceof Int8Array) return 'I8';
  return 'U8';
}

export function assertDType(s: unknown, source: string, what: string): DType {
  if (!isDType(s)) throw new InputError(source, `${what} has unsupported dtype ${JSON.stringify(s)}`);
  return s;
}
