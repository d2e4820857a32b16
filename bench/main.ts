/**
 * npm run bench [-- options]: the panel's memory at 130m × 2048 tokens, the tfjs forward of a
 * 130m-shaped model on wasm and cpu, and on a GPU adapter the native WebGPU forward of 130m-shaped
 * Mamba-1 and Mamba-2 models kernel by kernel; printed as a table and written to
 * bench/results.json. Targets and anchors: issues 4, 7 and 12, docs/PERFORMANCE.md.
 *   --out=PATH              results file (default bench/results.json)
 *   --skip-forward, --skip-memory
 *   --memory-backend=NAME   backend of the panel in the memory run (default wasm)
 *   --memory-tokens=N       tokens of the memory run (default 2048)
 *   --forward-backends=LIST wasm,cpu,native (default all three; native: src/engine/webgpu, GPU adapters only)
 *   --matmul-sweep          also time every tiling of the forward's projections (GPU adapters only)
 *   --cpu-layers=N          layers for the wasm and cpu forward (default 1)
 *   --tokens=N              forward length (default 1024)
 *   --forward-reps=N        timed native forwards ÷ 4 (default 5)
 *   --sweep                 the batched WebGPU ablation sweep (issue 16; GPU adapters only): sweepBench.ts
 *   --sweep-tokens=N        its tokens (default 512); --sweep-layers=N its layers (default 24)
 *   --long[=N]              the chunked long run on native WebGPU (issue 13; GPU adapters only), N tokens (default 32768): longBench.ts
 *   --long-panel[=N]        the panel (wasm) on mamba1-tiny over N tokens (default 131072): the renderer's peak, the
 *                           overview's time and the move to the last window (issue 13; webviewMemory.ts)
 *   --big-checkpoint[=DIR]  also write a mamba-2.8b-shaped bf16 checkpoint (5.5 GB; default
 *                           .bench-tmp/) and measure inspect's peak RSS and the panel's renderer on it (issue 14)
 *   --big-runs=LIST         with --big-checkpoint: wasm, reference, panel (default wasm,panel; the
 *                           float64 reference takes about 10 minutes here)
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { isLanguageModel } from '../src/engine/model/graph';
import { createDawnDevice, type DawnAdapterInfo } from '../src/node/webgpu';
import { BIG_RUNS, runBigCheckpointBench, type BigRun } from './bigCheckpoint';
import { runForwardBench } from './forwardBench';
import { runMatmulSweep } from './matmulSweep';
import { runNativeForwardBench } from './nativeForwardBench';
import { runLongBench } from './longBench';
import { runSweepBench } from './sweepBench';
import { MAMBA2_130M, MAMBA_130M, randomMamba1, randomMamba2 } from './randomModel';
import { table, type Row } from './report';

/** Issues 4 and 12's figures, measured on the same H200 with PyTorch 2.11 / transformers 5.17 (pure-PyTorch path). */
const ANCHORS = {
  transformersForwardMs: { 1024: 1227, 2048: 2777 } as Record<number, number>,
  /** Issue 12: PyTorch 2.11 eager with mamba_ssm's CUDA selective_scan_fwd, top-10 next tokens to the host. */
  mambaSsmForwardTop10Ms: { 1024: 15.8, 2048: 21.3 } as Record<number, number>,
  /** Issue 12: mamba_ssm's selective_scan_fwd at one 130m layer (D 1536, N 16, gate + softplus), and its Triton SSD at 24 heads × 64, N 128. */
  mambaSsmScanMs: { 1024: 0.0785, 2048: 0.138 } as Record<number, number>,
  mambaSsmSsdMs2048: 0.71,
};

function flag(name: string): string | undefined {
  const hit = process.argv.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  return hit === undefined ? undefined : hit.includes('=') ? hit.slice(hit.indexOf('=') + 1) : '';
}
const intFlag = (name: string, fallback: number) => {
  const v = flag(name);
  return v === undefined ? fallback : Number.parseInt(v, 10);
};

async function main(): Promise<void> {
  const started = Date.now();
  const log = (s: string) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${s}`);
  const rows: Row[] = [];
  let adapter: DawnAdapterInfo | undefined;
  // First, while this process is small: the memory run builds its own 0.5 GB model.
  if (flag('skip-memory') === undefined) {
    // Loaded only here: it drives Chromium through Playwright, which a GPU machine's bench bundle
    // leaves out (--external:playwright-core, run with --skip-memory).
    const memory = await import('./webviewMemory');
    const why = memory.unavailable();
    if (why) log(`memory section skipped: ${why}`);
    else rows.push(...(await memory.runWebviewMemoryBench({ tokens: intFlag('memory-tokens', 2048), backend: (flag('memory-backend') ?? 'wasm') as 'wasm' }, log)));
  }
  const longPanel = flag('long-panel');
  if (longPanel !== undefined) {
    const memory = await import('./webviewMemory');
    const why = memory.unavailable();
    if (why) log(`long panel section skipped: ${why}`);
    else rows.push(...(await memory.runWebviewMemoryBench({ tokens: longPanel ? Number.parseInt(longPanel, 10) : 131_072, backend: 'wasm', model: 'test/fixtures/mamba1-tiny', section: 'long panel' }, log)));
  }
  const big = flag('big-checkpoint');
  if (big !== undefined) {
    const runs = (flag('big-runs') ?? 'wasm,panel').split(',');
    const bad = runs.find((r) => !(BIG_RUNS as readonly string[]).includes(r));
    if (bad) throw new Error(`--big-runs: unknown run "${bad}" (choose from ${BIG_RUNS.join(', ')})`);
    rows.push(...(await runBigCheckpointBench(big || '.bench-tmp', runs as BigRun[], log)));
  }
  const tokens = intFlag('tokens', 1024);
  if (flag('skip-forward') === undefined) {
    log('building the random-weight mamba-130m-shaped model');
    const model = await randomMamba1(MAMBA_130M);
    const backends = (flag('forward-backends') ?? 'wasm,cpu,native').split(',');
    rows.push(...(await runForwardBench(model, {
      tokens,
      backends: backends.filter((b): b is 'wasm' | 'cpu' => b === 'wasm' || b === 'cpu'),
      cpuLayers: intFlag('cpu-layers', 1),
    }, log)));
    if (backends.includes('native') && isLanguageModel(model)) {
      const { device, info } = await createDawnDevice({ preciseTimestamps: true });
      adapter = info;
      log(`adapter: ${info.vendor} ${info.architecture} ${info.device} (${info.description})${info.software ? ', software' : ''}`);
      // 24 layers × 1024 tokens take minutes on a CPU WebGPU; the tests check it there instead.
      if (info.software) log('native forward skipped: a software adapter (test/unit/webgpuForward.test.ts checks it there)');
      else {
        if (flag('matmul-sweep') !== undefined) rows.push(...(await runMatmulSweep(device, [tokens], log)));
        const native = { tokens, reps: intFlag('forward-reps', 5) * 4, software: false, profile: device.features.has('timestamp-query') };
        rows.push(...(await runNativeForwardBench(device, model, { ...native, model: 'mamba-130m' }, log)));
        log('building the random-weight mamba2-130m-shaped model');
        const mamba2 = await randomMamba2(MAMBA2_130M);
        if (isLanguageModel(mamba2)) rows.push(...(await runNativeForwardBench(device, mamba2, { ...native, model: 'mamba2-130m' }, log)));
      }
      device.destroy();
    }
  }
  if (flag('sweep') !== undefined) {
    const { device, info } = await createDawnDevice();
    adapter ??= info;
    log(`adapter: ${info.vendor} ${info.architecture} ${info.device}${info.software ? ', software' : ''}`);
    // 12,288 cells of a 130m model take hours on a CPU WebGPU; test/unit/webgpuSweep.test.ts checks the sweep there.
    if (info.software) log('sweep skipped: a software adapter');
    else {
      log('building the random-weight mamba-130m-shaped model');
      const model = await randomMamba1(MAMBA_130M);
      if (isLanguageModel(model)) rows.push(...(await runSweepBench(device, model, { tokens: intFlag('sweep-tokens', 512), layers: intFlag('sweep-layers', MAMBA_130M.nLayer) }, log)));
    }
    device.destroy();
  }

  const long = flag('long');
  if (long !== undefined) {
    const { device, info } = await createDawnDevice();
    adapter ??= info;
    // 32k tokens through 24 layers of a 130m model take many minutes on a CPU WebGPU; test/unit/webgpuChunked.test.ts checks the chunks there.
    if (info.software) log('long run skipped: a software adapter');
    else {
      log('building the random-weight mamba-130m-shaped model');
      const model = await randomMamba1(MAMBA_130M);
      if (isLanguageModel(model)) rows.push(...(await runLongBench(device, model, long ? Number.parseInt(long, 10) : 32_768, log)));
    }
    device.destroy();
  }

  const summary = summarize(rows, tokens, adapter?.software);
  console.log(table(rows));
  console.log('\n' + summary.lines.join('\n'));
  const out = flag('out') || 'bench/results.json';
  writeFileSync(out, JSON.stringify({
    date: new Date().toISOString(),
    host: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, node: process.version, platform: `${process.platform}-${process.arch}` },
    adapter,
    tfjs: tf.version_core,
    anchors: ANCHORS,
    rows,
    summary: summary.values,
  }, null, 2) + '\n');
  log(`wrote ${out}`);
}

/** Issue 12's targets against the rows that measure them. */
function summarize(rows: readonly Row[], tokens: number, software: boolean | undefined): { lines: string[]; values: Record<string, number | boolean | undefined> } {
  const find = (model: string, name: string) => rows.find((r) => r.backend === 'webgpu-native' && r.name.includes(model) && r.name.includes(name));
  const scanPerLayer = (model: string, layers: number) => {
    const parts = rows.filter((r) => r.section === 'kernels' && r.name.startsWith(`${model}: scan `));
    return parts.length ? parts.reduce((s, r) => s + r.ms, 0) / layers : undefined;
  };
  const memory = rows.filter((r) => r.section === 'memory' && r.mib !== undefined);
  const native = find('mamba-130m,', 'top-10 predictions to the host');
  const sweep = rows.find((r) => r.section === 'sweep' && r.name.startsWith('ablation sweep'));
  const longRun = rows.find((r) => r.section === 'long' && r.name.startsWith('chunked forward'));
  const longWindow = rows.find((r) => r.section === 'long' && r.name.startsWith('window at full resolution'));
  const anchor = ANCHORS.mambaSsmForwardTop10Ms[tokens];
  const v: Record<string, number | boolean | undefined> = {
    nativeForwardMs: native?.ms,
    nativeOverMambaSsm: native && anchor && native.ms / anchor,
    panelRunMs: find('mamba-130m,', 'as the panel runs it')?.ms,
    encodeMs: find('mamba-130m:', 'CPU time to encode')?.ms,
    scanPerLayerMs: scanPerLayer('mamba-130m', MAMBA_130M.nLayer),
    mamba2ScanPerLayerMs: scanPerLayer('mamba2-130m', MAMBA2_130M.nLayer),
    panelPeakMiB: memory.length ? Math.max(...memory.map((r) => r.mib!)) : undefined,
    sweepSeconds: sweep && sweep.ms / 1000,
    longRunSeconds: longRun && longRun.ms / 1000,
    longWindowSeconds: longWindow && longWindow.ms / 1000,
  };
  const x = (n: number | boolean | undefined, d = 1) => (typeof n === 'number' ? n.toFixed(d) : 'n/a');
  const lines: string[] = [];
  for (const bigRun of rows.filter((r) => r.section === 'big checkpoint')) {
    lines.push(`mamba-2.8b bf16 inspect at 64 tokens on ${bigRun.backend}, peak RSS ≤ 4 GB: ${x((bigRun.mib! * 2 ** 20) / 1e9, 2)} GB in ${x(bigRun.ms / 1000, 0)} s`);
  }
  const bigPanel = rows.filter((r) => r.section === 'big checkpoint panel' && r.mib !== undefined);
  if (bigPanel.length) lines.push(`panel (wasm) on mamba-2.8b bf16 at 512 tokens, renderer ≤ 2 GB (${(2e9 / 2 ** 20).toFixed(0)} MiB): peak ${x(Math.max(...bigPanel.map((r) => r.mib!)), 0)} MiB`);
  if (memory.length) lines.push(`panel at ${MAMBA_130M.nLayer} layers × ${memory[0].shape.split('L=')[1]} tokens < 2 GB (${(2e9 / 2 ** 20).toFixed(0)} MiB): peak ${x(v.panelPeakMiB, 0)} MiB in the renderer`);
  const longPanel = rows.filter((r) => r.section === 'long panel' && r.mib !== undefined);
  const overview = longPanel.find((r) => r.name.startsWith('run in chunks'));
  if (overview) lines.push(`panel (wasm) on mamba1-tiny at ${overview.shape.split('L=')[1]} tokens, renderer ≤ 1.5 GB (${(1.5e9 / 2 ** 20).toFixed(0)} MiB) and the overview within 60 s: peak ${x(Math.max(...longPanel.map((r) => r.mib!)), 0)} MiB, the overview in ${x(overview.ms / 1000, 1)} s`);
  if (longRun) lines.push(`long run, ${longRun.shape} of mamba-130m on WebGPU in 2048-token chunks, ≤ 0.5 s at 32,768: ${x(v.longRunSeconds, 2)} s`);
  if (longWindow) lines.push(`a 2048-token window of a mamba-130m run at full resolution on WebGPU, < 1 s: ${x(v.longWindowSeconds, 2)} s (${longWindow.note})`);
  if (sweep) lines.push(`ablation sweep, ${sweep.shape} of mamba-130m on WebGPU, ≤ 60 s at 24 × 512: ${x(v.sweepSeconds, 1)} s`);
  if (software === false) {
    lines.push(`native forward at ${tokens} tokens, top-10 to the host, at parity with PyTorch + mamba_ssm (${anchor ?? '?'} ms): ${x(v.nativeForwardMs, 2)} ms, ${x(v.nativeOverMambaSsm, 2)}× its time`);
    lines.push(`CPU time to encode and submit one forward ≤ 2 ms: ${x(v.encodeMs, 2)} ms`);
    lines.push(`selective scan per layer (D 1536, N 16, L ${tokens}; ≤ 0.07 ms at 2048): ${x(v.scanPerLayerMs, 3)} ms; Mamba-2 scan (24 × 64, N 128; ≤ 0.35 ms at 2048): ${x(v.mamba2ScanPerLayerMs, 3)} ms`);
  }
  return { lines, values: v };
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
