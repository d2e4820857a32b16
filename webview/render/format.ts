/** Number formatting shared by tooltips, legends and tables: 4 significant digits, never "1e+0". */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '−Inf';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(3).replace('-', '−');
  return Number(v.toPrecision(4)).toString().replace('-', '−');
}

export function formatPercent(p: number): string {
  return `${(p * 100).toFixed(p < 0.01 && p > 0 ? 2 : 1)} %`;
}

/** Makes whitespace in a token visible (the token strip and tooltips show it). */
export function visibleToken(text: string): string {
  return text.replace(/ /g, '␣').replace(/\n/g, '⏎').replace(/\t/g, '⇥').replace(/\r/g, '␍');
}
