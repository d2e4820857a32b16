/**
 * `mamba-scope compare <a> <b>`: where two runs of the same input part ways, tensor by tensor
 * (src/engine/analysis/compare.ts). Exit 0 whether or not they diverge — the output says which;
 * 1 only for unreadable input. --json prints the contract of issue 5 and nothing else on stdout.
 */
import { comparisonJson, compareStores, type DumpComparison, type PositionDrift, type TensorComparison } from '../../engine/analysis/compare';
import { DEFAULT_BUCKET, trendText } from '../../engine/analysis/positionBuckets';
import { dumpTokens } from '../../engine/formats/dump';
import type { TensorStore } from '../../engine/formats/safetensors';
import { openTensorFile } from '../../engine/formats/tensorFile';
import { shapeString } from '../../engine/tensor';
import { NodeFileSource } from '../../node/files';
import { flag, number, parseArgs, UsageError } from '../args';
import type { Command, CommandIO } from '../command';
import { MAX_SECONDS_OPTION, MAX_SECONDS_USAGE, maxSecondsOf, RATES, RunBudget, type Tick } from '../runBudget';

const USAGE = `usage: mamba-scope compare <a> <b> [--rtol R --atol A] [--max-seconds S] [--json]

Compares every tensor the two files share (safetensors, .npy or .npz; mamba-dump/1 dumps name
layers and tokens). a is the reference. Per tensor: shape, max |a−b|, normalized error
max|a−b| / max|a|, the first element (row-major) with |a−b| > atol + rtol·|a| or a non-finite
value, and the non-finite values of each file; then the first layer that diverges, and the drift
against position (max |a−b| per 512 tokens; a long dump's logits rows at its positions) of the
top-level tensors and the first divergent one, where they span more than 512 tokens.

  --rtol R, --atol A   tolerance; default from the dtypes (the looser file; stored dtype or the
                       dump's "dtype" metadata), as mamba_ssm's tests: fp32 6e-4/2e-3,
                       fp16 3e-3/5e-3, bf16 3e-2/5e-2
  --json               {"tensors": [{"name", "shape", "maxAbsError", "normalizedError",
                         "firstDivergence": {"index", "token"} | null,
                         "nonFinite": {"a", "b", "first": [{"tensor", "index"}]}}],
                        "firstDivergentLayer"}; notes (tensors in one file only) go to stderr
${MAX_SECONDS_USAGE}`;

/** parseArgs takes options only: the file operands are set aside first (the value after a value option is not a file). */
function splitPositional(argv: readonly string[], valueOptions: readonly string[]): { positional: string[]; options: string[] } {
  const positional: string[] = [];
  const options: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) positional.push(argv[i]);
    else {
      options.push(argv[i]);
      if (valueOptions.includes(argv[i]) && i + 1 < argv.length) options.push(argv[++i]);
    }
  }
  return { positional, options };
}

function tolerance(value: number | undefined, name: string): number | undefined {
  if (value !== undefined && value < 0) throw new UsageError(`--${name} must be ≥ 0; got ${value}`);
  return value;
}

async function open(path: string): Promise<TensorStore> {
  return openTensorFile(await NodeFileSource.open(path));
}

export const compare: Command = {
  name: 'compare',
  summary: 'where two dumps diverge: errors per tensor and token, first divergence, NaN/Inf',
  usage: USAGE,
  async run(argv: readonly string[], io: CommandIO): Promise<number> {
    const { positional, options } = splitPositional(argv, ['--rtol', '--atol', '--max-seconds']);
    if (positional.length !== 2) throw new UsageError(`needs two files to compare; got ${positional.length}`);
    const args = parseArgs(options, { rtol: { value: true }, atol: { value: true }, json: { value: false }, ...MAX_SECONDS_OPTION });
    const budget = new RunBudget('compare', io, maxSecondsOf(args));
    const override = { rtol: tolerance(number(args, 'rtol'), 'rtol'), atol: tolerance(number(args, 'atol'), 'atol') };
    const [a, b] = [await open(positional[0]), await open(positional[1])];
    const shared = a.names().filter((n) => b.info(n));
    const elements = (s: TensorStore) => shared.reduce((sum, n) => sum + s.info(n)!.shape.reduce((x, y) => x * y, 1), 0);
    budget.plan([{ name: 'compare', work: elements(a) + elements(b), rate: RATES.element }], 'compare smaller files');
    const result = await budget.phase('compare', 2 * shared.length, (tick) => compareStores(countingReads(a, tick, 0), countingReads(b, tick, 1), override));
    const notes = describeNotes(result);
    if (flag(args, 'json')) {
      io.out(JSON.stringify(comparisonJson(result)));
      for (const n of notes) io.err(n);
      return 0;
    }
    for (const line of formatComparison(result, a, b)) io.out(line);
    for (const n of notes) io.out(n);
    budget.reportTime(false);
    return 0;
  },
};

/**
 * The store, ticking at each tensor read: compareStores reads each shared tensor once from each
 * file, in turn, so the reads count its progress. (Tensors paired under another name are counted
 * as they come.)
 */
function countingReads(store: TensorStore, tick: Tick, first: number): TensorStore {
  let reads = 0;
  const counted = <T>(read: Promise<T>): Promise<T> => {
    tick(first + 2 * reads++);
    return read;
  };
  return {
    name: store.name,
    metadata: store.metadata,
    names: () => store.names(),
    info: (name) => store.info(name),
    readFloat: ((name: string, precision: 'float32' | 'float64') => counted(store.readFloat(name, precision))) as TensorStore['readFloat'],
    readNative: (name) => counted(store.readNative(name)),
  };
}

function describeNotes(c: DumpComparison): string[] {
  const notes: string[] = [];
  if (c.onlyInA.length) notes.push(`note: only in a (not compared): ${c.onlyInA.join(', ')}`);
  if (c.onlyInB.length) notes.push(`note: only in b (not compared): ${c.onlyInB.join(', ')}`);
  for (const r of c.renamed) notes.push(`note: ${r.name} compares a's ${r.a} with b's ${r.b}`);
  for (const m of c.shapeMismatches) notes.push(`note: ${m.name} has shape ${shapeString(m.a)} in a but ${shapeString(m.b)} in b (not compared; counts as a divergence)`);
  if (!c.tensors.length && !c.shapeMismatches.length) notes.push('note: the files have no tensor in common');
  return notes;
}

function num(v: number): string {
  return v === 0 ? '0' : Number.isFinite(v) ? v.toExponential(2) : String(v);
}

function tokenLabel(token: number | null, pieces: string[] | null): string {
  if (token === null) return '';
  const piece = pieces?.[token];
  return piece === undefined ? `token ${token}` : `token ${token} ${JSON.stringify(piece)}`;
}

function divergenceCell(t: TensorComparison, pieces: string[] | null): string {
  const d = t.firstDivergence;
  if (!d) return '—';
  return `[${d.index.join(', ')}] ${tokenLabel(d.token, pieces)} (a=${num(d.a)}, b=${num(d.b)})`;
}

/** The tokens with the largest errors, worst first. */
function worstTokens(t: TensorComparison, count: number): number[] {
  return [...t.tokenProfile.keys()].filter((k) => t.tokenProfile[k] > 0).sort((x, y) => t.tokenProfile[y] - t.tokenProfile[x]).slice(0, count);
}

function formatComparison(c: DumpComparison, a: TensorStore, b: TensorStore): string[] {
  const pieces = safeTokens(a) ?? safeTokens(b);
  const rows = c.tensors.map((t) => [
    t.name,
    shapeString(t.shape),
    num(t.maxAbsError),
    num(t.normalizedError),
    `${t.nonFinite.a}/${t.nonFinite.b}`,
    divergenceCell(t, pieces),
  ]);
  const header = ['tensor', 'shape', 'max|a−b|', 'norm.err', 'non-finite a/b', 'first divergence'];
  const widths = header.map((h, k) => Math.max(h.length, ...rows.map((r) => r[k].length)));
  const line = (r: string[]) => r.map((cell, k) => (k === r.length - 1 ? cell : cell.padEnd(widths[k]))).join('  ');
  const out = [`a = ${a.name} (reference)`, `b = ${b.name}`, '', line(header), ...rows.map(line), ''];
  const divergent = c.tensors.filter((t) => t.firstDivergence);
  for (const t of divergent) {
    const worst = worstTokens(t, 3).map((k) => `${k}: ${num(t.tokenProfile[k])}`);
    const nonFinite = t.nonFinite.first.map((l) => `${l.tensor}[${l.index.join(', ')}]`).join(' ');
    out.push(`${t.name}: diverges beyond rtol ${t.tolerance.rtol}, atol ${t.tolerance.atol}; worst axis-0 rows ${worst.join(', ') || 'none'}${nonFinite ? `; non-finite at ${nonFinite}` : ''}`);
  }
  // Drift against position: the top-level tensors (logits, nll) and the first divergent one; every tensor's is in the panel's Numerics view.
  const firstDivergent = divergent.find((t) => t.layer !== null);
  // input_ids and a long dump's positions are the same integers in both files, not numerics.
  const drifting = c.tensors.filter((t) => t.drift && t.name !== 'input_ids' && t.name !== 'positions' && (t.layer === null || t === firstDivergent));
  if (drifting.length) out.push(`drift against position (max |a−b| per ${DEFAULT_BUCKET} tokens):`);
  for (const t of drifting) out.push(`  ${describeDrift(t.name, t.drift!)}`);
  const ids = c.tensors.find((t) => t.name === 'input_ids');
  if (ids?.firstDivergence) out.push('warning: input_ids differ: the dumps are of different inputs');
  out.push(
    divergent.length || c.shapeMismatches.length
      ? `diverges: ${divergent.length + c.shapeMismatches.length} of ${c.tensors.length + c.shapeMismatches.length} tensors; first divergent layer: ${c.firstDivergentLayer ?? 'none (only top-level tensors)'}`
      : `no divergence: all ${c.tensors.length} shared tensors within tolerance`,
  );
  return out;
}

/** "nll 2.1e-6 at 0 → 3.4e-6 at 32256 (lowest …, highest 4.0e-6 at 20480; 64 buckets)". */
export function describeDrift(name: string, drift: readonly PositionDrift[]): string {
  return `${name} ${trendText(drift.map((d) => ({ start: d.start, value: d.maxAbsError })), num)}`;
}

/** Token pieces only label the output: a dump whose metadata is unreadable is still compared. */
function safeTokens(store: TensorStore): string[] | null {
  try {
    return dumpTokens(store);
  } catch {
    return null;
  }
}
