/**
 * How a heatmap's values map onto its colormap: linearly, on a log scale, or each row scaled to
 * its own range. Mamba's Δ is heavy-tailed (mean 0.03, max 0.5 on the demo model), so linearly
 * nearly every cell gets the bottom colour; log₁₀ spreads the decades, and per-row scaling shows
 * how each channel varies over the tokens whatever its own magnitude.
 *
 * The result is the values as they are coloured (the heatmap keeps the raw ones for its
 * tooltip), the colour scale over those, and what the legend says about them.
 */
import { formatValue } from './format';
import { colorScale, type ColorScale, type LegendText } from './legend';

export const SCALE_MODES = ['linear', 'log', 'perRow'] as const;
export type ScaleMode = (typeof SCALE_MODES)[number];
export const SCALE_MODE_LABELS: Record<ScaleMode, string> = { linear: 'linear', log: 'log₁₀ (symmetric log for signed data)', perRow: 'per-row min–max' };

export function isScaleMode(x: unknown): x is ScaleMode {
  return typeof x === 'string' && (SCALE_MODES as readonly string[]).includes(x);
}

/**
 * The log scale spans at most this many decades below the largest |value|: smaller values
 * (exact zeros included) are drawn at the low end instead of stretching the scale to −∞.
 */
export const LOG_DECADES = 6;

export interface ScaledValues {
  /** Values as coloured, same layout as the input (the input itself when linear). */
  readonly values: Float32Array;
  readonly scale: ColorScale;
  /** null: the legend's default (value name, the scale's ends). */
  readonly legend: LegendText | null;
}

export interface ScaleNames {
  /** "Δ" */
  readonly value: string;
  /** What a row is ("channel") and a column ("token"): the per-row legend names both. */
  readonly row: string;
  readonly column: string;
}

/**
 * `cells` is row-major [rows, width]; `min`/`max` are its finite extremes (NaN if none). NaN and
 * ±Inf stay non-finite in every mode, so they are still drawn as non-finite.
 */
export function scaleValues(cells: Float32Array, width: number, min: number, max: number, mode: ScaleMode, diverging: boolean, names: ScaleNames): ScaledValues {
  if (mode === 'log' && !Number.isNaN(min)) return logValues(cells, min, max, diverging, names);
  if (mode === 'perRow' && width > 0) return perRowValues(cells, width, diverging, names);
  return { values: cells, scale: colorScale(min, max, diverging), legend: null };
}

function logValues(cells: Float32Array, min: number, max: number, diverging: boolean, names: ScaleNames): ScaledValues {
  const top = Math.max(Math.abs(min), Math.abs(max));
  if (!(top > 0)) return { values: cells, scale: colorScale(min, max, diverging), legend: { name: names.value, low: formatValue(min), high: formatValue(max), note: 'log scale off: every value is 0' } };
  const floor = Math.max(smallestNonZero(cells), top * 10 ** -LOG_DECADES);
  const out = new Float32Array(cells.length);
  let lo = Infinity, hi = -Infinity;
  if (min >= 0) {
    // Plain log₁₀, with values below `floor` (zeros) drawn at log₁₀(floor).
    for (let i = 0; i < cells.length; i++) {
      const v = cells[i];
      out[i] = v - v !== 0 ? v : Math.log10(v > floor ? v : floor);
    }
    lo = Math.log10(floor);
    hi = Math.log10(max);
    const note = min < floor ? `values ≤ ${formatValue(floor)}${min === 0 ? ' (0 too)' : ''} at the low end` : null;
    return { values: out, scale: colorScale(lo, hi, diverging), legend: { name: `log₁₀ ${names.value}`, low: formatValue(lo), high: formatValue(hi), note } };
  }
  // Signed data: sign(x)·log₁₀(1 + |x|/c), linear near 0 and logarithmic beyond ±c, so the sign survives.
  const c = floor;
  for (let i = 0; i < cells.length; i++) {
    const v = cells[i];
    out[i] = v - v !== 0 ? v : Math.sign(v) * Math.log10(1 + Math.abs(v) / c);
  }
  lo = -Math.log10(1 - min / c);
  hi = Math.sign(max) * Math.log10(1 + Math.abs(max) / c);
  return { values: out, scale: colorScale(lo, hi, diverging), legend: { name: `symlog₁₀ ${names.value}`, low: formatValue(lo), high: formatValue(hi), note: `sign(x)·log₁₀(1 + |x|/c), c = ${formatValue(c)}` } };
}

/**
 * Each row mapped through its own colour scale (min–max, or ±max|x| on a diverging map) over all
 * its columns, onto [0, 1]: one legend fits every row. All columns, not the visible ones, so the
 * colours do not change while panning.
 */
function perRowValues(cells: Float32Array, width: number, diverging: boolean, names: ScaleNames): ScaledValues {
  const out = new Float32Array(cells.length);
  const neutral = diverging ? 0.5 : 0;
  for (let r = 0; r * width < cells.length; r++) {
    const row = cells.subarray(r * width, (r + 1) * width);
    let min = Infinity, max = -Infinity;
    for (const v of row) if (v - v === 0) { if (v < min) min = v; if (v > max) max = v; }
    const s = colorScale(Number.isFinite(min) ? min : NaN, Number.isFinite(max) ? max : NaN, diverging);
    const k = s.hi > s.lo ? 1 / (s.hi - s.lo) : 0;
    for (let x = 0; x < width; x++) {
      const v = row[x];
      out[r * width + x] = v - v !== 0 ? v : k ? (v - s.lo) * k : neutral;
    }
  }
  const range = diverging ? `±max |${names.value}|` : 'min–max';
  return {
    values: out,
    scale: { lo: 0, hi: 1, pivot: neutral },
    legend: { name: `${names.value}, per-${names.row} ${range} over all ${names.column}s`, low: diverging ? '−max' : 'min', high: 'max', note: null },
  };
}

function smallestNonZero(cells: Float32Array): number {
  let m = Infinity;
  for (const v of cells) {
    const a = Math.abs(v);
    if (a > 0 && a < m) m = a;
  }
  return m;
}
