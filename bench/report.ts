/** Benchmark rows, the printed table and bench/results.json. */
export interface Row {
  readonly section: string;
  readonly name: string;
  readonly backend: string;
  readonly shape: string;
  /** Median wall milliseconds per call (end to end, from JS). */
  readonly ms: number;
  /** GPU time from timestamp queries, where the adapter has them. */
  readonly gpuMs?: number;
  /** Bytes the operation must move ÷ time (GPU time where known). */
  readonly gbps?: number;
  /** Resident memory, MiB (the memory section). */
  readonly mib?: number;
  readonly note?: string;
}

const fmt = (x: number | undefined, digits = 2) => (x === undefined || !Number.isFinite(x) ? '' : x >= 100 ? x.toFixed(0) : x.toPrecision(3 + (digits - 2)));

export function table(rows: readonly Row[]): string {
  const head = ['section', 'what', 'backend', 'shape', 'wall ms', 'GPU ms', 'GB/s', 'MiB', 'note'];
  const body = rows.map((r) => [r.section, r.name, r.backend, r.shape, fmt(r.ms), fmt(r.gpuMs), fmt(r.gbps), fmt(r.mib), r.note ?? '']);
  const widths = head.map((h, i) => Math.min(i === 1 ? 60 : 70, Math.max(h.length, ...body.map((b) => b[i].length))));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 4 && i <= 7 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}
