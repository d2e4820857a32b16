/**
 * npm run bench [-- options]: the scan at one mamba-130m layer, the whole 130m-shaped forward and
 * the panel's memory at 130m × 2048 tokens, printed as a table and written to bench/results.json.
 * Targets and anchors: issues 4 and 7, docs/PERFORMANCE.md.
 *   --out=PATH              results file (default bench/results.json)
 *   --skip-scan, --skip-forward, --skip-memory
 *   --memory-backend=NAME   backend of the panel in the memory run (default wasm)
 *   --memory-tokens=N       tokens of the memory run (default 2048)
 *   --forward-backends=LIST webgpu,wasm,cpu,native (default all four; native: src/engine/webgpu, GPU adapters only)
 *   --matmul-sweep          also time every tiling of the forward's projections (GPU adapters only)
 *   --cpu-layers=N          layers for the wasm and cpu forward (default 1)
 *   --tokens=N              forward length (default 1024)
 *   --forward-reps=N        timed webgpu forwards (default 5)
 *   --ops-tokens=N          tokens of the tfjs-ops scan (default: all 2048 on a GPU, 128 on a CPU WebGPU)
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { isLanguageModel } from '../src/engine/model/graph';
import { createDawnDevice, registerDawnWebGpu } from '../src/node/webgpu';
import { runForwardBench } from './forwardBench';
import { runMatmulSweep } from './matmulSweep';
import { runNativeForwardBench } from './nativeForwardBench';
import { MAMBA2_130M, MAMBA_130M, randomMamba1, randomMamba2 } from './randomModel';
import { table, type Row } from './report';
import { LAYER, runScanBench, scanBytes } from './scanBench';

/** Issue 4's figures, measured on the same H200 with PyTorch 2.11 / transformers 5.17 (pure-PyTorch path). */
const ANCHORS = {
  transformersForwardMs: { 1024: 1227, 2048: 2777 } as Record<number, number>,
  /** Issue 12: PyTorch 2.11 eager with mamba_ssm's CUDA selective_scan_fwd, top-10 next tokens to the host. */
  mambaSsmForwardTop10Ms: { 1024: 15.8, 2048: 21.3 } as Record<number, number>,
  pytorchScanLoopMs: 66,
  pytorchScanMaterializedMs: 3.1,
  h200BandwidthTBs: 4.8,
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
  // First, while this process is small: the memory run builds its own 0.5 GB model.
  if (flag('skip-memory') === undefined) {
    // Loaded only here: it drives Chromium through Playwright, which a GPU machine's bench bundle
    // leaves out (--external:playwright-core, run with --skip-memory).
    const memory = await import('./webviewMemory');
    const why = memory.unavailable();
    if (why) log(`memory section skipped: ${why}`);
    else rows.push(...(await memory.runWebviewMemoryBench({ tokens: intFlag('memory-tokens', 2048), backend: (flag('memory-backend') ?? 'wasm') as 'wasm' }, log)));
  }
  const gpuSections = flag('skip-scan') === undefined || flag('skip-forward') === undefined;
  const adapter = gpuSections ? await registerDawnWebGpu({ preciseTimestamps: true }) : undefined;
  if (adapter) {
    if (!(await tf.setBackend('webgpu'))) throw new Error('the webgpu backend did not start');
    log(`adapter: ${adapter.vendor} ${adapter.architecture} ${adapter.device} (${adapter.description})${adapter.software ? ', software' : ''}`);
  }

  if (adapter && flag('skip-scan') === undefined) {
    rows.push(...(await runScanBench({
      software: adapter.software,
      opsTokens: intFlag('ops-tokens', adapter.software ? 128 : LAYER.L),
      chunkSweep: adapter.software ? [128] : [16, 24, 32, 48, 64, 96, 128, 256],
      jsReps: adapter.software ? 1 : 3,
    }, log)));
  }
  const tokens = intFlag('tokens', 1024);
  if (adapter && flag('skip-forward') === undefined) {
    log('building the random-weight mamba-130m-shaped model');
    const model = await randomMamba1(MAMBA_130M);
    const backends = (flag('forward-backends') ?? 'webgpu,wasm,cpu,native').split(',');
    rows.push(...(await runForwardBench(model, {
      tokens,
      backends: backends.filter((b) => b !== 'native'),
      cpuLayers: intFlag('cpu-layers', 1),
      reps: intFlag('forward-reps', 5),
    }, log)));
    // 24 layers × 1024 tokens take minutes on a CPU WebGPU; the tests check it there instead.
    if (backends.includes('native') && adapter.software) log('native forward skipped: a software adapter (test/unit/webgpuForward.test.ts checks it there)');
    else if (backends.includes('native') && isLanguageModel(model)) {
      const { device } = await createDawnDevice({ preciseTimestamps: true });
      if (flag('matmul-sweep') !== undefined) rows.push(...(await runMatmulSweep(device, [tokens], log)));
      const native = { tokens, reps: intFlag('forward-reps', 5) * 4, software: false, profile: device.features.has('timestamp-query') };
      rows.push(...(await runNativeForwardBench(device, model, { ...native, model: 'mamba-130m' }, log)));
      log('building the random-weight mamba2-130m-shaped model');
      const mamba2 = await randomMamba2(MAMBA2_130M);
      if (isLanguageModel(mamba2)) rows.push(...(await runNativeForwardBench(device, mamba2, { ...native, model: 'mamba2-130m' }, log)));
      device.destroy();
    }
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
    scanBytes: scanBytes(LAYER.L, LAYER.D, LAYER.N),
    rows,
    summary: summary.values,
  }, null, 2) + '\n');
  log(`wrote ${out}`);
}

/** The targets against the rows that measure them. */
function summarize(rows: readonly Row[], tokens: number, software: boolean | undefined): { lines: string[]; values: Record<string, number | boolean | undefined> } {
  const time = (r: Row | undefined) => r && (r.gpuMs ?? r.ms);
  const scanRows = rows.filter((r) => r.section === 'scan');
  const fused = scanRows.find((r) => r.name.startsWith('WGSL fused'));
  const bestWgsl = scanRows.filter((r) => r.name.startsWith('WGSL')).sort((a, b) => time(a)! - time(b)!)[0];
  const ops = scanRows.find((r) => r.name.startsWith('tfjs-ops'));
  const js = scanRows.find((r) => r.backend === 'js');
  const memory = rows.filter((r) => r.section === 'memory' && r.mib !== undefined);
  const forward = rows.find((r) => r.section === 'forward' && r.backend === 'webgpu' && r.name.includes(`${MAMBA_130M.nLayer} layers`));
  const native = rows.find((r) => r.backend === 'webgpu-native' && r.name.includes('mamba-130m') && r.name.includes('top-10 predictions to the host'));
  const bound = (scanBytes(LAYER.L, LAYER.D, LAYER.N) / (ANCHORS.h200BandwidthTBs * 1e12)) * 1e3;
  const v: Record<string, number | boolean | undefined> = {
    fusedScanMs: time(fused),
    bestWgslScanMs: time(bestWgsl),
    bandwidthBoundMs: bound,
    tfjsOpsOverFused: ops && fused && ops.ms / fused.ms,
    jsOverFused: js && fused && js.ms / fused.ms,
    forwardMs: forward?.ms,
    transformersOverForward: forward && ANCHORS.transformersForwardMs[tokens] && ANCHORS.transformersForwardMs[tokens] / forward.ms,
    nativeForwardMs: native?.ms,
    nativeOverMambaSsm: native && ANCHORS.mambaSsmForwardTop10Ms[tokens] && native.ms / ANCHORS.mambaSsmForwardTop10Ms[tokens],
    panelPeakMiB: memory.length ? Math.max(...memory.map((r) => r.mib!)) : undefined,
  };
  const x = (n: number | boolean | undefined, d = 1) => (typeof n === 'number' ? n.toFixed(d) : 'n/a');
  const lines: string[] = [];
  if (scanRows.length) lines.push(`best WGSL scan ${x(v.bestWgslScanMs, 3)} ms (${bestWgsl?.name ?? '-'}); fused ${x(v.fusedScanMs, 3)} ms; bandwidth bound at 4.8 TB/s ${x(bound * 1e3, 1)} µs`);
  if (memory.length) lines.push(`panel at ${MAMBA_130M.nLayer} layers × ${memory[0].shape.split('L=')[1]} tokens < 2 GB (${(2e9 / 2 ** 20).toFixed(0)} MiB): peak ${x(v.panelPeakMiB, 0)} MiB in the renderer`);
  if (software === true) {
    lines.push(`CPU WebGPU targets: fused ≥ 50× the tfjs-ops scan: ${x(v.tfjsOpsOverFused)}×; no slower than the JS loop: JS/fused = ${x(v.jsOverFused, 2)}`);
  } else if (software === false) {
    const best = v.bestWgslScanMs as number | undefined;
    lines.push(`GPU targets: scan ≤ 0.3 ms: ${x(best, 3)} ms; ≥ 200× the PyTorch loop (66 ms): ${x(best && ANCHORS.pytorchScanLoopMs / best, 0)}×; ≥ 10× the materialized form (3.1 ms): ${x(best && ANCHORS.pytorchScanMaterializedMs / best, 1)}×`);
    lines.push(`forward at ${tokens} tokens ≤ 100 ms and ≥ 12× transformers: ${x(v.forwardMs)} ms, ${x(v.transformersOverForward)}× transformers' ${ANCHORS.transformersForwardMs[tokens] ?? '?'} ms`);
    lines.push(`native forward at ${tokens} tokens, top-10 to the host, at parity with PyTorch + mamba_ssm (${ANCHORS.mambaSsmForwardTop10Ms[tokens] ?? '?'} ms): ${x(v.nativeForwardMs, 2)} ms, ${x(v.nativeOverMambaSsm, 2)}× its time`);
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
