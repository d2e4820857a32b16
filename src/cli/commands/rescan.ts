/**
 * `mamba-scope rescan`: recompute each layer's scan from a dump's own inputs with the model's A
 * and D, in a chosen precision, algorithm and discretization, and say how far it lands from the
 * dump's y and h (src/engine/analysis/rescan.ts). --json prints the contract of issue 5 (extras
 * under their own keys).
 */
import { rescanDump, rescanJson, rescannableLayers, type LayerRescan, type QuantityError } from '../../engine/analysis/rescan';
import { dumpKey } from '../../engine/formats/dump';
import type { TensorStore } from '../../engine/formats/safetensors';
import { openTensorFile } from '../../engine/formats/tensorFile';
import { stateSize } from '../../engine/model/config';
import { loadModelFolder } from '../../engine/model/load';
import { PRECISIONS } from '../../engine/reference/precision';
import { DISCRETIZATIONS, SCAN_MODES, type ScanVariant } from '../../engine/reference/scanVariants';
import { NodeFileSource, NodeFolderStore } from '../../node/files';
import { flag, intList, number, oneOf, parseArgs, positiveInt, required, UsageError } from '../args';
import type { Command, CommandIO } from '../command';
import { MAX_SECONDS_OPTION, MAX_SECONDS_USAGE, maxSecondsOf, RATES, RunBudget } from '../runBudget';

/** Mamba-1 has no chunk size of its own; 64 carries states across chunks even in short samples. */
const DEFAULT_CHUNK = 64;

const USAGE = `usage: mamba-scope rescan --model <dir> --dump <dump> [--layer i] [--precision fp64|fp32|fp16|bf16]
                         [--mode sequential|chunked|parallel] [--zoh euler|exact] [--chunk-size Q]
                         [--rtol R --atol A] [--max-seconds S] [--json]

Recomputes each layer's selective scan from the dump's u, delta, B, C with the model's
A = −exp(A_log) and D, isolating the scan from the rest of the network, and reports the error
against the dump's y (and its states h at h_tokens, and y ⊙ silu(z) when the dump has z).

  --precision   fp64 (default: the float64 reference), or the dtype to emulate as mamba_ssm's
                kernel runs it: inputs and A_log, D stored in it, arithmetic and state in fp32
  --mode        sequential (default) | chunked (mamba_ssm's SSD chunking, --chunk-size tokens;
                default: the Mamba-2 config's chunk_size, else ${DEFAULT_CHUNK}) | parallel (Blelloch scan)
  --zoh         euler (default: Δ·B as mamba_ssm) | exact ((ΔA)⁻¹(exp(ΔA) − 1)·Δ·B)
  --rtol, --atol  tolerance of the first divergence; default from the dump's and the emulated
                dtype (the looser), as in compare
  --json        {"layers": [{"layer", "y": {"normalizedError", "maxAbsError", "firstDivergence"},
                "h": {…} | null, "gated": {…} | null, "zohVsEuler": {"maxAbsPerChannel",
                "relativePerChannel"}, "tolerance"}], "precision", "mode", "zoh", "chunkSize"}
${MAX_SECONDS_USAGE}

Always shown: per channel, max_t |y_exact − y_euler| relative to max_t |y_euler| (fp64), i.e. how
much the Euler discretization of B changes this layer's output.`;

export const rescan: Command = {
  name: 'rescan',
  summary: "recompute a dump's scans in another precision, algorithm or discretization",
  usage: USAGE,
  async run(argv: readonly string[], io: CommandIO): Promise<number> {
    const args = parseArgs(argv, {
      model: { value: true }, dump: { value: true }, layer: { value: true }, precision: { value: true }, mode: { value: true },
      zoh: { value: true }, 'chunk-size': { value: true }, rtol: { value: true }, atol: { value: true }, json: { value: false },
      ...MAX_SECONDS_OPTION,
    });
    const budget = new RunBudget('rescan', io, maxSecondsOf(args));
    const modelDir = required(args, 'model');
    const dumpPath = required(args, 'dump');
    const layers = intList(args, 'layer');
    if (layers?.some((l) => l < 0)) throw new UsageError('--layer must be ≥ 0');
    const rtol = number(args, 'rtol');
    const atol = number(args, 'atol');
    if ((rtol ?? 0) < 0 || (atol ?? 0) < 0) throw new UsageError('--rtol and --atol must be ≥ 0');

    const model = await loadModelFolder(new NodeFolderStore(modelDir), 'float64');
    const dump = await openTensorFile(await NodeFileSource.open(dumpPath));
    const variant: ScanVariant = {
      precision: oneOf(args, 'precision', PRECISIONS, 'fp64'),
      mode: oneOf(args, 'mode', SCAN_MODES, 'sequential'),
      zoh: oneOf(args, 'zoh', DISCRETIZATIONS, 'euler'),
      chunkSize: positiveInt(args, 'chunk-size') ?? model.layers[0]?.scanView()?.chunkSize ?? DEFAULT_CHUNK,
    };
    const chosen = layers ?? rescannableLayers(dump);
    budget.plan([{ name: 'rescan', work: chosen.reduce((sum, l) => sum + rescanWork(dump, l, stateSize(model.config)), 0), rate: RATES.rescanStep }], 'rescan fewer layers (--layer)');
    const result = await budget.phase('rescan', chosen.length, async (tick) => {
      const out: LayerRescan[] = [];
      // One layer at a time, to tick between them.
      for (const [k, layer] of chosen.entries()) {
        tick(k);
        out.push(...(await rescanDump(model, dump, { variant, layers: [layer], tolerance: { rtol, atol } })));
      }
      return out;
    });
    if (flag(args, 'json')) io.out(JSON.stringify(rescanJson(result, variant)));
    else for (const line of formatRescan(result, variant, dump.name)) io.out(line);
    budget.reportTime(flag(args, 'json'));
    return 0;
  },
};

/**
 * Scan steps of one layer's rescan: the variant asked for and the two fp64 scans of the Euler/exact
 * ZOH comparison, each L·channels·N steps; a fourth for the parallel and chunked modes' extra passes.
 * A layer the dump lacks is left to rescanDump to name.
 */
function rescanWork(dump: TensorStore, layer: number, states: number): number {
  const u = dump.info(dumpKey(layer, 'u'));
  return u ? 4 * u.shape[0] * (u.shape[1] ?? 1) * states : 0;
}

function num(v: number): string {
  return v === 0 ? '0' : Number.isFinite(v) ? v.toExponential(2) : String(v);
}

function errorCells(e: QuantityError | null): string[] {
  if (!e) return ['—', '—', '—'];
  const d = e.firstDivergence;
  return [num(e.normalizedError), num(e.maxAbsError), d ? `[${d.index.join(', ')}] token ${d.token}` : '—'];
}

function formatRescan(layers: readonly LayerRescan[], v: ScanVariant, dumpName: string): string[] {
  const out = [`rescan of ${dumpName}: precision ${v.precision}, mode ${v.mode}${v.mode === 'chunked' ? ` (chunks of ${v.chunkSize})` : ''}, zoh ${v.zoh}`, ''];
  const header = ['layer', 'y norm.err', 'y max|Δ|', 'y first divergence', 'h norm.err', 'h max|Δ|', 'h first divergence', 'gated norm.err'];
  const rows = layers.map((l) => [String(l.layer), ...errorCells(l.y), ...errorCells(l.h), l.gated ? num(l.gated.normalizedError) : '—']);
  const widths = header.map((h, k) => Math.max(h.length, ...rows.map((r) => r[k].length)));
  for (const r of [header, ...rows]) out.push(r.map((c, k) => c.padEnd(widths[k])).join('  ').trimEnd());
  out.push('', 'exact vs Euler ZOH, per channel max_t |y_exact − y_euler| / max_t |y_euler| (fp64):');
  for (const l of layers) {
    const rel = l.zoh.relative;
    const order = [...rel.keys()].sort((x, y) => rel[y] - rel[x]);
    const sorted = [...rel].sort((x, y) => x - y);
    const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
    const worst = order.slice(0, 5).map((c) => `${c} (${num(rel[c])}, max|Δy| ${num(l.zoh.maxAbs[c])})`);
    out.push(`  layer ${l.layer}: median ${num(median)}; worst channels ${worst.join(', ')}`);
  }
  const tol = layers[0]?.tolerance;
  if (tol) out.push('', `first divergence: |y_dump − y_rescan| > ${tol.atol} + ${tol.rtol}·|y_dump|`);
  return out;
}
