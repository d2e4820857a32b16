/**
 * How the per-token decay exp(Δ·A) survives each precision. A decay that rounds to 1 keeps the
 * state forever (no forgetting); one that rounds to 0 erases it. Both happen silently in fp16 and
 * bf16 (bf16 has 8 mantissa bits: every decay above 1 − 2⁻⁹ becomes 1), so the panel shows, per
 * precision, a histogram of the rounded decays and the counts that hit exactly 1 or 0.
 *
 * The histogram axis is log10(−ln decay) = log10(−Δ·A): decays near 1 sit on the left, decays
 * near 0 on the right, and the rounding to a precision shows as gaps and spikes. The bin edges
 * come from the exact (float64) values so every precision is drawn on the same axis.
 */
import type { F64 } from '../reference/ops';
import { PRECISIONS, rounder, type Precision } from '../reference/precision';

export interface DecayHistogram {
  readonly precision: Precision;
  /** counts[k]: rounded decays in (0, 1) with log10(−ln decay) in [edges[k], edges[k+1]) (the ends clamp). */
  readonly counts: number[];
  /** Δ·A < 0 but the rounded decay is exactly 1. */
  readonly roundsToOne: number;
  /** The rounded decay is exactly 0 (the true value never is). */
  readonly underflowsToZero: number;
}

export interface DecayHistograms {
  readonly edges: number[];
  /** Decays counted: finite Δ·A. */
  readonly total: number;
  /** Δ·A = 0 (Δ = 0): exactly 1 in every precision, so not part of roundsToOne. */
  readonly exactOnes: number;
  /** Δ·A not finite (a NaN or Inf Δ). */
  readonly nonFinite: number;
  readonly histograms: DecayHistogram[];
}

/**
 * delta [L, K]; A [K, N] (Mamba-1, already −exp(A_log)) or [K] (Mamba-2, one A per head).
 */
export function decayHistograms(delta: F64, A: F64, bins = 24): DecayHistograms {
  const [L, K] = delta.shape;
  if (A.shape[0] !== K) throw new Error(`decayHistograms: delta has ${K} columns, A has ${A.shape[0]} rows`);
  const N = A.shape.length > 1 ? A.shape[1] : 1;
  const logDecays = new Float64Array(L * K * N);
  let m = 0;
  let exactOnes = 0;
  let nonFinite = 0;
  for (let t = 0; t < L; t++) {
    for (let k = 0; k < K; k++) {
      const dt = delta.data[t * K + k];
      for (let n = 0; n < N; n++) {
        const x = dt * A.data[k * N + n];
        if (!Number.isFinite(x)) nonFinite++;
        else if (x === 0) exactOnes++;
        else logDecays[m++] = x;
      }
    }
  }
  const values = logDecays.subarray(0, m);
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of values) {
    if (x >= 0) continue; // a positive Δ·A (A > 0: not a Mamba model) has no place on this axis
    const v = Math.log10(-x);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const edges = lo <= hi ? Array.from({ length: bins + 1 }, (_, i) => lo + ((hi - lo) * i) / bins) : [];
  const width = edges.length ? (hi - lo) / bins || 1 : 1;
  const histograms = PRECISIONS.map((precision) => {
    const round = rounder(precision);
    const counts = new Array<number>(Math.max(0, edges.length - 1)).fill(0);
    let roundsToOne = 0;
    let underflowsToZero = 0;
    for (const x of values) {
      const decay = round(Math.exp(x));
      if (decay === 0) underflowsToZero++;
      else if (decay === 1) roundsToOne += x < 0 ? 1 : 0;
      else if (decay < 1 && counts.length) {
        const bin = Math.floor((Math.log10(-Math.log(decay)) - lo) / width);
        counts[Math.min(counts.length - 1, Math.max(0, bin))]++;
      }
    }
    return { precision, counts, roundsToOne, underflowsToZero };
  });
  return { edges, total: m + exactOnes, exactOnes, nonFinite, histograms };
}
