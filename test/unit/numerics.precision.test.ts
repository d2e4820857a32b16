import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bf16ToFloat, f16ToFloat, floatToF16 } from '../../src/engine/formats/dtypes';
import { roundBf16, roundFp16, rounder } from '../../src/engine/reference/precision';

/**
 * Every finite non-negative value of a 16-bit format in increasing order, from the format's own
 * decoder (dtypes.ts), which shares no code with the rounding under test.
 */
function positiveGrid(decode: (bits: number) => number, signBit: number): { values: number[]; bits: number[] } {
  const values: number[] = [];
  const bits: number[] = [];
  for (let b = 0; b < signBit; b++) {
    const v = decode(b);
    if (!Number.isFinite(v)) break; // the exponent-all-ones patterns start after the largest finite value
    values.push(v);
    bits.push(b);
  }
  return { values, bits };
}

function checkRoundToNearestEven(round: (x: number) => number, decode: (bits: number) => number, signBit: number, maxFinite: number): void {
  const { values, bits } = positiveGrid(decode, signBit);
  assert.equal(values[values.length - 1], maxFinite);
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    assert.equal(round(v), v, `${v} is representable`);
    assert.equal(round(-v), -v);
    if (k + 1 === values.length) break;
    const next = values[k + 1];
    const mid = (v + next) / 2;
    const even = bits[k] % 2 === 0 ? v : next;
    assert.equal(round(mid), even, `tie between ${v} and ${next} goes to the even one`);
    const gap = next - v;
    assert.equal(round(mid - gap / 8), v);
    assert.equal(round(mid + gap / 8), next);
  }
  // Past the largest finite value by half a step (its spacing, continued) is a tie to the even
  // "next" value 2^(emax+1): Inf.
  const lastGap = maxFinite - values[values.length - 2];
  assert.equal(round(maxFinite + lastGap / 2 - lastGap / 64), maxFinite);
  assert.equal(round(maxFinite + lastGap / 2), Infinity);
  assert.equal(round(-(maxFinite + lastGap)), -Infinity);
}

describe('numerics: precision rounding', () => {
  it('fp16 rounds to nearest, ties to even, over every fp16 value including subnormals, and overflows to Inf at 65520', () => {
    checkRoundToNearestEven(roundFp16, f16ToFloat, 0x8000, 65504);
    assert.equal(roundFp16(65519.99), 65504);
    assert.equal(roundFp16(65520), Infinity);
    assert.equal(roundFp16(2 ** -25), 0, 'half the smallest subnormal ties to 0 (even)');
    assert.equal(roundFp16(2 ** -25 * 1.0001), 2 ** -24);
  });

  it('the f16 bits of a float32 (the WebGPU engine\'s packed weights) decode to the value roundFp16 gives, and every f16 encodes to itself', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = f16ToFloat(h);
      if (Number.isNaN(v)) assert.ok(Number.isNaN(f16ToFloat(floatToF16(v))));
      else assert.equal(floatToF16(v), h, `f16 ${h.toString(16)}`);
    }
    fc.assert(
      fc.property(fc.float({ noNaN: true }), (x) => {
        assert.ok(Object.is(f16ToFloat(floatToF16(x)), roundFp16(x)), `x=${x}`);
      }),
      { numRuns: 20000 },
    );
  });

  it('bf16 rounds to nearest, ties to even, over every bf16 value including subnormals', () => {
    checkRoundToNearestEven(roundBf16, bf16ToFloat, 0x8000, 3.3895313892515355e38);
    assert.equal(roundBf16(1 + 2 ** -8), 1, 'tie between 1 and 1+2^-7 goes to 1');
    assert.equal(roundBf16(1 + 3 * 2 ** -8), 1 + 2 ** -6);
  });

  it('bf16 of any float32 equals the round-to-nearest-even bit trick of PyTorch (independent oracle)', () => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true }), (x) => {
        f[0] = x;
        const bits = u[0];
        u[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000) >>> 0;
        assert.ok(Object.is(roundBf16(x), f[0]), `x=${x}`);
      }),
      { numRuns: 20000 },
    );
  });

  it('keeps signs, zeros, NaN and infinities', () => {
    for (const r of [roundFp16, roundBf16, rounder('fp32')]) assert.ok(Object.is(r(-1e-300), -0), 'underflow keeps the sign');
    for (const r of [roundFp16, roundBf16, rounder('fp32'), rounder('fp64')]) {
      assert.ok(Object.is(r(-0), -0));
      assert.ok(Number.isNaN(r(NaN)));
      assert.equal(r(Infinity), Infinity);
      assert.equal(r(-Infinity), -Infinity);
    }
    assert.equal(rounder('fp32')(0.1), Math.fround(0.1));
    assert.equal(rounder('fp64')(0.1), 0.1);
  });
});
