import assert from 'node:assert/strict';
import { roundBf16 } from '../../src/engine/reference/precision';
import { scanVariant, zohFactor, type ScanInputs, type ScanVariant } from '../../src/engine/reference/scanVariants';
import { normalizedError } from '../../src/engine/tensor';
import { randomScan } from './numerics.fixtures';

const fp64 = (mode: ScanVariant['mode'], chunkSize = 16): ScanVariant => ({ precision: 'fp64', mode, zoh: 'euler', chunkSize });
const AT = Int32Array.from([0, 7, 40, 99]);

/**
 * The scan as mamba-minimal writes it, one token at a time, with nothing shared with the engine:
 *   h_t = exp(Δ_t·A) ⊙ h_{t−1} + (Δ_t·u_t)·B_t,   y_t = C_t·h_t + D·u_t.
 * Mamba-2 is the same per channel, with A, Δ and D taken from the channel's head and B, C from
 * the head's group. Returns y [L·channels] and the states after the tokens in `at`.
 */
function recurrence(s: ScanInputs, at: Int32Array): { y: number[]; h: number[] } {
  const [L, channels] = s.u.shape;
  const mamba2 = s.aLog.shape.length === 1;
  const heads = s.delta.shape[1];
  const channelsPerHead = channels / heads;
  const headsPerGroup = heads / s.groups;
  const N = s.B.shape[1] / s.groups;
  const h = Array.from({ length: channels }, () => new Array<number>(N).fill(0));
  const y: number[] = [];
  const states: number[] = [];
  for (let t = 0; t < L; t++) {
    for (let c = 0; c < channels; c++) {
      const head = Math.floor(c / channelsPerHead);
      const group = Math.floor(head / headsPerGroup);
      const dt = s.delta.data[t * heads + head];
      const u = s.u.data[t * channels + c];
      let yc = s.D.data[head] * u;
      for (let n = 0; n < N; n++) {
        const A = -Math.exp(mamba2 ? s.aLog.data[head] : s.aLog.data[c * N + n]);
        const B = s.B.data[t * s.groups * N + group * N + n];
        const C = s.C.data[t * s.groups * N + group * N + n];
        h[c][n] = Math.exp(dt * A) * h[c][n] + dt * u * B;
        yc += C * h[c][n];
      }
      y.push(yc);
    }
    if (at.includes(t)) states.push(...h.flat());
  }
  return { y, h: states };
}

describe('numerics: scan variants', () => {
  const mamba1 = randomScan(1, 100, 12, 5);
  const mamba2 = randomScan(2, 100, 4 * 6, 5, { heads: 4, groups: 2 });

  it('fp64 sequential Euler is the exact recurrence, Mamba-1 and Mamba-2 (heads, groups)', () => {
    for (const [name, inputs] of [['Mamba-1', mamba1], ['Mamba-2', mamba2]] as const) {
      const got = scanVariant(inputs, fp64('sequential'), AT);
      const want = recurrence(inputs, AT);
      // Only the summation order differs from the definition: a few ulps.
      assert.ok(normalizedError(got.y.data, want.y) < 1e-14, `${name}: y ${normalizedError(got.y.data, want.y)}`);
      assert.ok(normalizedError(got.h.data, want.h) < 1e-14, `${name}: h ${normalizedError(got.h.data, want.h)}`);
    }
  });

  for (const [name, inputs] of [['Mamba-1', mamba1], ['Mamba-2 (4 heads, 2 groups)', mamba2]] as const) {
    it(`${name}: chunked and parallel agree with sequential in fp64 to 1e-12 relative (y and h)`, () => {
      const seq = scanVariant(inputs, fp64('sequential'), AT);
      const variants: ScanVariant[] = [fp64('parallel'), fp64('chunked', 1), fp64('chunked', 7), fp64('chunked', 64), fp64('chunked', 100), fp64('chunked', 1000)];
      for (const v of variants) {
        const r = scanVariant(inputs, v, AT);
        assert.ok(normalizedError(r.y.data, seq.y.data) < 1e-12, `${v.mode}/${v.chunkSize}: y ${normalizedError(r.y.data, seq.y.data)}`);
        assert.ok(normalizedError(r.h.data, seq.h.data) < 1e-12, `${v.mode}/${v.chunkSize}: h ${normalizedError(r.h.data, seq.h.data)}`);
      }
    });
  }

  it('parallel (Blelloch) handles every length, including non-powers of two and 1', () => {
    for (const L of [1, 2, 3, 5, 8, 33]) {
      const inputs = randomScan(L, L, 3, 2);
      const at = Int32Array.from([L - 1]);
      const seq = scanVariant(inputs, fp64('sequential'), at);
      assert.ok(normalizedError(scanVariant(inputs, fp64('parallel'), at).y.data, seq.y.data) < 1e-13, `L=${L}`);
    }
  });

  it('exact ZOH matches a hand-computed two-token case; Euler is Δ·B', () => {
    // One channel, one state: A = −2 (A_log = ln 2), Δ = (0.5, 0.25), u = (1, 2), B = (1, 3), C = (1, 1), D = 0.
    const inputs: ScanInputs = {
      u: { shape: [2, 1], data: Float64Array.of(1, 2) },
      delta: { shape: [2, 1], data: Float64Array.of(0.5, 0.25) },
      B: { shape: [2, 1], data: Float64Array.of(1, 3) },
      C: { shape: [2, 1], data: Float64Array.of(1, 1) },
      aLog: { shape: [1, 1], data: Float64Array.of(Math.log(2)) },
      D: { shape: [1], data: Float64Array.of(0) },
      groups: 1,
    };
    // B̄ = (ΔA)⁻¹(exp(ΔA) − 1)·Δ·B = (exp(ΔA) − 1)/A · B, written out with exp (not expm1).
    const h0 = ((Math.exp(-1) - 1) / -2) * 1 * 1;
    const h1 = Math.exp(-0.5) * h0 + ((Math.exp(-0.5) - 1) / -2) * 3 * 2;
    const exact = scanVariant(inputs, { precision: 'fp64', mode: 'sequential', zoh: 'exact', chunkSize: 1 }, Int32Array.of(0, 1));
    assert.ok(Math.abs(exact.y.data[0] - h0) < 1e-15 && Math.abs(exact.y.data[1] - h1) < 1e-15, `${exact.y.data} vs ${h0}, ${h1}`);
    const euler = scanVariant(inputs, fp64('sequential'), Int32Array.of(0, 1));
    assert.equal(euler.y.data[0], 0.5 * 1 * 1);
    assert.ok(Math.abs(euler.y.data[1] - (Math.exp(-0.5) * 0.5 + 0.25 * 2 * 3)) < 1e-15);
    // The ratio exact/Euler of a first write is φ(ΔA) = (1 − e^−1) for ΔA = −1: 37 % smaller.
    assert.ok(Math.abs(exact.y.data[0] / euler.y.data[0] - (1 - Math.exp(-1))) < 1e-15);
    for (const mode of ['chunked', 'parallel'] as const) {
      const r = scanVariant(inputs, { precision: 'fp64', mode, zoh: 'exact', chunkSize: 1 }, Int32Array.of(0, 1));
      assert.ok(normalizedError(r.y.data, exact.y.data) < 1e-15, mode);
    }
  });

  it('φ(x) = expm1(x)/x stays accurate where exp(x) − 1 cancels', () => {
    for (const x of [-1e-12, -1e-9, -1e-6]) {
      const series = 1 + x / 2 + (x * x) / 6; // Taylor, exact to far below double precision here
      assert.ok(Math.abs(zohFactor(x) - series) <= 2 ** -52, `x=${x}: within 2 ulps of 1`);
    }
    assert.equal(zohFactor(0), 1);
    assert.ok(Math.abs((Math.exp(-1e-12) - 1) / -1e-12 - 1) > 1e-6, 'the naive formula would be off by 1e-5 here');
  });

  it('bf16 emulation stores y in bf16, carries states in fp32, and errs ≥ 10× more than fp32', () => {
    const ref = scanVariant(mamba1, fp64('sequential'), AT);
    const errors: Record<string, number> = {};
    for (const precision of ['fp32', 'fp16', 'bf16'] as const) {
      const r = scanVariant(mamba1, { precision, mode: 'sequential', zoh: 'euler', chunkSize: 16 }, AT);
      errors[precision] = normalizedError(r.y.data, ref.y.data);
      for (const v of r.h.data) assert.equal(Math.fround(v), v, 'states are fp32');
      if (precision === 'bf16') for (const v of r.y.data) assert.equal(roundBf16(v), v, 'y is stored in bf16');
    }
    assert.ok(errors.fp32 < 1e-5, `fp32 ${errors.fp32}`);
    assert.ok(errors.bf16 > 10 * errors.fp32 && errors.bf16 > errors.fp16, JSON.stringify(errors));
    assert.ok(errors.bf16 < 0.05, `bf16 ${errors.bf16}`);
  });

  it('chunked and parallel emulations in fp32 stay within fp32 error of the reference', () => {
    const ref = scanVariant(mamba1, fp64('sequential'), AT);
    for (const mode of ['chunked', 'parallel'] as const) {
      const r = scanVariant(mamba1, { precision: 'fp32', mode, zoh: 'euler', chunkSize: 16 }, AT);
      const e = normalizedError(r.y.data, ref.y.data);
      assert.ok(e > 0 && e < 1e-5, `${mode}: ${e}`);
    }
  });
});
