/**
 * Rounding a float64 value to the floating-point formats a Mamba kernel runs in, so the
 * reference can replay a computation "as bf16 would" and show which rounding causes an error.
 *
 * fp32 is Math.fround. fp16 and bf16 have no JS type: rounding is done on the float64 value
 * directly (one correct rounding, round to nearest, ties to even), with gradual underflow to
 * subnormals and overflow to ±Inf, like a hardware cast from a wider float. Rounding from
 * float64 in one step avoids the double rounding that fp64 → fp32 → bf16 could introduce.
 */

export type Precision = 'fp64' | 'fp32' | 'fp16' | 'bf16';
export const PRECISIONS: readonly Precision[] = ['fp64', 'fp32', 'fp16', 'bf16'];

export type Rounder = (x: number) => number;

interface MiniFormat {
  /** Stored mantissa bits (without the implicit leading 1). */
  readonly mantissaBits: number;
  /** Exponent of the smallest normal number; below it the format is subnormal. */
  readonly minExponent: number;
  /** Largest finite value; a rounded result above it is ±Inf. */
  readonly maxFinite: number;
}

const FP16: MiniFormat = { mantissaBits: 10, minExponent: -14, maxFinite: 65504 };
const BF16: MiniFormat = { mantissaBits: 7, minExponent: -126, maxFinite: 3.3895313892515355e38 };

const scratch = new Float64Array(1);
// The high word of a little-endian float64 (every platform the engine runs on is little-endian).
const scratchHigh = new Uint32Array(scratch.buffer, 4, 1);

/** floor(log2|x|) read from the float64 exponent field: exact, unlike Math.log2. −1023 for 0 and float64 subnormals. */
function binaryExponent(x: number): number {
  scratch[0] = x;
  return ((scratchHigh[0] >>> 20) & 0x7ff) - 1023;
}

function roundTo(x: number, f: MiniFormat): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const magnitude = Math.abs(x);
  // The spacing of representable values around x: fixed below the normal range (subnormals).
  const exponent = Math.max(binaryExponent(magnitude), f.minExponent);
  const quantum = 2 ** (exponent - f.mantissaBits);
  const scaled = magnitude / quantum; // exact: division by a power of two
  let units = Math.floor(scaled);
  const rest = scaled - units;
  if (rest > 0.5 || (rest === 0.5 && units % 2 === 1)) units += 1;
  const rounded = units * quantum;
  const result = rounded > f.maxFinite ? Infinity : rounded;
  return x < 0 ? -result : result;
}

export function roundFp16(x: number): number {
  return roundTo(x, FP16);
}

export function roundBf16(x: number): number {
  return roundTo(x, BF16);
}

const identity: Rounder = (x) => x;

export function rounder(p: Precision): Rounder {
  switch (p) {
    case 'fp64': return identity;
    case 'fp32': return Math.fround;
    case 'fp16': return roundFp16;
    case 'bf16': return roundBf16;
  }
}

/** A rounded copy of `data` (always a fresh Float64Array, so callers may write to it). */
export function roundArray(data: ArrayLike<number>, p: Precision): Float64Array {
  const r = rounder(p);
  const out = new Float64Array(data.length);
  for (let i = 0; i < out.length; i++) out[i] = r(data[i]);
  return out;
}

