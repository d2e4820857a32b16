/**
 * How the native engine stores a model's projections and embedding on the GPU: f32, or a 16-bit
 * format in pairs packed into u32 words, unpacked by the kernels as they read them: f16 with
 * WGSL's core unpack2x16float (any adapter, with or without the shader-f16 feature), bf16 by
 * shifting its bits into the top of an f32 (exactly what bf16 means). Either halves the weights'
 * memory; the kernels still accumulate in f32. A bf16 or f16 checkpoint stored so on the GPU
 * holds exactly its own values (`storedFormat`); an f32 one rounds each weight to 8 (bf16) or 11
 * (f16) significant bits, measured against the float64 reference in docs/PERFORMANCE.md.
 */
import { floatToF16 } from '../formats/dtypes';
import type { TensorStore } from '../formats/safetensors';

export const WEIGHT_FORMATS = ['f32', 'f16', 'bf16'] as const;
export type WeightFormat = (typeof WEIGHT_FORMATS)[number];

/** The bf16 nearest to x (ties to even), as its 16 bits. */
function floatToBf16(bits: Uint32Array, i: number): number {
  const u = bits[i];
  // NaN stays a (quiet) NaN rather than rounding into infinity.
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Element i of a packed 16-bit array: even elements in the low half of each word. */
export function packHalves(data: ArrayLike<number>, format: 'f16' | 'bf16'): Uint32Array {
  const words = new Uint32Array(Math.ceil(data.length / 2));
  const f32 = format === 'bf16' ? Float32Array.from(data) : undefined;
  const bits = f32 && new Uint32Array(f32.buffer);
  const half = (i: number) => (i >= data.length ? 0 : bits ? floatToBf16(bits, i) : floatToF16(data[i]));
  for (let i = 0; i < data.length; i += 2) words[i >> 1] = (half(i) | (half(i + 1) << 16)) >>> 0;
  return words;
}

/** WGSL `fn halfAt(i : i32) -> f32`: element i of the packed 16-bit array bound as `name`. */
export function halfAtWgsl(name: string, format: 'f16' | 'bf16'): string {
  if (format === 'bf16') {
    return `fn halfAt(i : i32) -> f32 {
  let word = ${name}[i >> 1u];
  if ((i & 1) == 1) { return bitcast<f32>(word & 0xffff0000u); }
  return bitcast<f32>(word << 16u);
}`;
  }
  return `fn halfAt(i : i32) -> f32 {
  let pair = unpack2x16float(${name}[i >> 1u]);
  if ((i & 1) == 1) { return pair.y; }
  return pair.x;
}`;
}

/**
 * The format that holds a checkpoint's projections exactly in the least memory: bf16 or f16 when
 * every 2-D float tensor is stored so, else f32.
 */
export function storedFormat(store: TensorStore): WeightFormat {
  const matrices = store.names().map((n) => store.info(n)!).filter((t) => t.shape.length === 2);
  if (matrices.length && matrices.every((t) => t.dtype === 'BF16')) return 'bf16';
  if (matrices.length && matrices.every((t) => t.dtype === 'F16')) return 'f16';
  return 'f32';
}
