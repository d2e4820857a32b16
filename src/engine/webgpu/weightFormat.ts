/**
 * How the native engine stores a model's projections and embedding on the GPU: f32, or f16 in
 * pairs packed into u32 words, unpacked by the kernels as they read them (WGSL's core
 * unpack2x16float, so any adapter runs it, with or without the shader-f16 feature). f16 halves
 * the weights' memory; the kernels still accumulate in f32. Which to use is measured against the
 * float64 reference (docs/PERFORMANCE.md): f16 rounds every weight to 11 significant bits.
 */
import { floatToF16 } from '../formats/dtypes';

export type WeightFormat = 'f32' | 'f16';

/** Element i of a packed f16 array: even elements in the low half of each word. */
export function packF16(data: ArrayLike<number>): Uint32Array {
  const words = new Uint32Array(Math.ceil(data.length / 2));
  for (let i = 0; i < data.length; i += 2) {
    const hi = i + 1 < data.length ? floatToF16(data[i + 1]) : 0;
    words[i >> 1] = (floatToF16(data[i]) | (hi << 16)) >>> 0;
  }
  return words;
}

/** WGSL `fn halfAt(i : i32) -> f32`: element i of the packed f16 array bound as `name`. */
export const HALF_AT_WGSL = (name: string) => `fn halfAt(i : i32) -> f32 {
  let pair = unpack2x16float(${name}[i >> 1u]);
  if ((i & 1) == 1) { return pair.y; }
  return pair.x;
}`;
