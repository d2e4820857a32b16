/**
 * (d) A checkpoint larger than memory allows resident (issue 14): a mamba-2.8b-shaped bf16
 * checkpoint (d_model 2560, 64 layers, vocab 50280; 5.5 GB in 3 safetensors shards and an index,
 * transformers' key names), written to a scratch folder, then `mamba-scope inspect` (the built
 * dist/cli.js) at 64 tokens on wasm and on the float64 reference, with the process's peak RSS
 * read from /proc/<pid>/status (VmHWM) and the time to the first result beside the time to read
 * the weights alone; and the panel on wasm at 512 tokens, its renderer's memory measured as in
 * webviewMemory.ts. Targets: inspect's peak ≤ 4 GB on the 24 GB development machine, the time
 * dominated by reading the file; the renderer ≤ 2 GB.
 *
 * The weights are valid bf16 values drawn once into a 1 MiB pattern and repeated (speed and
 * memory do not depend on the values; NaNs would hide slow paths).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint } from '../src/engine/formats/checkpoint';
import { NodeFolderStore } from '../src/node/files';
import type { Row } from './report';

const H = 2560, LAYERS = 64, D = 5120, N = 16, R = 160, K = 4, V = 50280;
const SHARDS = 3;
const MB = 1e6;

/** Tensors of one layer, transformers' MambaForCausalLM names and shapes. */
function layerTensors(i: number): [string, number[]][] {
  const m = `backbone.layers.${i}.mixer.`;
  return [
    [`backbone.layers.${i}.norm.weight`, [H]],
    [`${m}in_proj.weight`, [2 * D, H]],
    [`${m}conv1d.weight`, [D, 1, K]],
    [`${m}conv1d.bias`, [D]],
    [`${m}x_proj.weight`, [R + 2 * N, D]],
    [`${m}dt_proj.weight`, [D, R]],
    [`${m}dt_proj.bias`, [D]],
    [`${m}A_log`, [D, N]],
    [`${m}D`, [D]],
    [`${m}out_proj.weight`, [H, D]],
  ];
}

const CONFIG = {
  architectures: ['MambaForCausalLM'], model_type: 'mamba', hidden_size: H, num_hidden_layers: LAYERS, intermediate_size: D,
  state_size: N, conv_kernel: K, time_step_rank: R, vocab_size: V, layer_norm_epsilon: 1e-5, use_bias: false, use_conv_bias: true, tie_word_embeddings: true,
};

/** bf16 bits of small values (|x| < 0.05): a weight pattern that keeps the activations finite. */
function pattern(): Uint8Array {
  const f = new Float32Array(1 << 18);
  let s = 12345;
  for (let i = 0; i < f.length; i++) f[i] = ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296 - 0.5) * 0.1;
  const u = new Uint32Array(f.buffer);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = u[i] >>> 16;
  return new Uint8Array(out.buffer);
}

/** Writes the checkpoint into `dir` (skipped when a complete one is there), returning its bytes. */
export function writeBigCheckpoint(dir: string, log: (s: string) => void): number {
  const done = path.join(dir, '.complete');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(CONFIG, null, 2));
  const tensors: [string, number[]][] = [['backbone.embeddings.weight', [V, H]]];
  for (let i = 0; i < LAYERS; i++) tensors.push(...layerTensors(i));
  tensors.push(['backbone.norm_f.weight', [H]]);
  const shardOf = (k: number) => Math.min(SHARDS - 1, Math.floor((k * SHARDS) / tensors.length));
  const names = Array.from({ length: SHARDS }, (_, s) => `model-${String(s + 1).padStart(5, '0')}-of-${String(SHARDS).padStart(5, '0')}.safetensors`);
  if (existsSync(done)) return names.reduce((sum, n) => sum + statSync(path.join(dir, n)).size, 0);
  const bytes = pattern();
  let total = 0;
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < SHARDS; s++) {
    const mine = tensors.filter((_, k) => shardOf(k) === s);
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const [name, shape] of mine) {
      const size = 2 * shape.reduce((a, b) => a * b, 1);
      header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + size] };
      offset += size;
      weightMap[name] = names[s];
    }
    const json = Buffer.from(JSON.stringify(header));
    const file = path.join(dir, names[s]);
    log(`writing ${names[s]}: ${mine.length} tensors, ${(offset / MB).toFixed(0)} MB`);
    const fd = openSync(file, 'w');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      writeSync(fd, len);
      writeSync(fd, json);
      for (const [name, shape] of mine) {
        let left = 2 * shape.reduce((a, b) => a * b, 1);
        // Norm weights and D of 1, A_log of log(1..16): the values a trained model has there.
        if (name.endsWith('norm.weight') || name.endsWith('.D') || name.endsWith('norm_f.weight')) {
          writeSync(fd, Buffer.from(new Uint16Array(left / 2).fill(0x3f80).buffer));
          continue;
        }
        if (name.endsWith('A_log')) {
          const a = new Uint16Array(left / 2);
          const f = new Float32Array(1);
          const u = new Uint32Array(f.buffer);
          for (let j = 0; j < a.length; j++) {
            f[0] = Math.log(1 + (j % N));
            a[j] = u[0] >>> 16;
          }
          writeSync(fd, Buffer.from(a.buffer));
          continue;
        }
        while (left > 0) {
          const n = Math.min(left, bytes.length);
          writeSync(fd, bytes, 0, n);
          left -= n;
        }
      }
    } finally {
      closeSync(fd);
    }
    total += statSync(file).size;
  }
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  writeFileSync(done, '');
  return total;
}

/** Peak RSS (VmHWM, MB) and wall time of one command, polled from /proc while it runs. */
function measure(cmd: string, args: string[]): Promise<{ code: number | null; peakMb: number; seconds: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', peak = 0;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const poll = setInterval(() => {
      try {
        const line = readFileSync(`/proc/${child.pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
        if (line) peak = Math.max(peak, (Number.parseInt(line.slice(6), 10) * 1024) / MB);
      } catch {
        // the process is gone: its last reading stands
      }
    }, 50);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(poll);
      resolve({ code, peakMb: peak, seconds: (performance.now() - t0) / 1000, stdout, stderr });
    });
  });
}

/** What runBigCheckpointBench measures: `inspect` on wasm and on the float64 reference, and the panel on wasm. */
export const BIG_RUNS = ['wasm', 'reference', 'panel'] as const;
export type BigRun = (typeof BIG_RUNS)[number];

/** Seconds to read every tensor of the checkpoint as float32, as a streamed forward reads them, with no compute. */
async function readSeconds(dir: string): Promise<number> {
  const store = await openCheckpoint(new NodeFolderStore(dir));
  const t0 = performance.now();
  for (const name of store.names()) await store.readFloat(name, 'float32');
  return (performance.now() - t0) / 1000;
}

export async function runBigCheckpointBench(scratch: string, runs: readonly BigRun[], log: (s: string) => void): Promise<Row[]> {
  const dir = path.join(scratch, 'mamba-2.8b-bf16');
  const bytes = writeBigCheckpoint(dir, log);
  const rows: Row[] = [];
  const read = await readSeconds(dir);
  log(`reading every tensor as float32: ${read.toFixed(1)} s`);
  for (const backend of runs.filter((r): r is 'wasm' | 'reference' => r !== 'panel')) {
    const ids = Array.from({ length: 64 }, (_, i) => (i * 7919 + 13) % V).join(',');
    const out = path.join(scratch, 'big-inspect.safetensors');
    log(`inspect --model mamba-2.8b-bf16 at 64 tokens (${backend})`);
    const r = await measure(process.execPath, [path.join(__dirname, '..', 'dist', 'cli.js'), 'inspect', '--model', dir, '--ids', ids, '--out', out, '--backend', backend, '--max-seconds', '3600']);
    if (r.code !== 0) throw new Error(`inspect failed (${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
    const dumpMb = statSync(out).size / MB;
    rmSync(out);
    rows.push({
      section: 'big checkpoint',
      name: `inspect, mamba-2.8b shape bf16 (5.5 GB, 3 shards), 64 tokens, ${backend === 'wasm' ? 'wasm (float32)' : 'float64 reference'}`,
      backend,
      shape: '64 tokens',
      ms: r.seconds * 1000,
      mib: r.peakMb * (MB / 2 ** 20),
      note: `peak RSS ${r.peakMb.toFixed(0)} MB (target ≤ 4000); reading the weights alone ${read.toFixed(0)} s of the ${r.seconds.toFixed(0)} s; checkpoint ${(bytes / MB).toFixed(0)} MB; dump ${dumpMb.toFixed(0)} MB; ${r.stderr.includes('one at a time') ? 'layers streamed' : 'weights resident'}`,
    });
  }
  if (runs.includes('panel')) {
    const memory = await import('./webviewMemory');
    const why = memory.unavailable();
    if (why) log(`panel run skipped: ${why}`);
    else rows.push(...(await memory.runWebviewMemoryBench({ tokens: 512, backend: 'wasm', model: dir, section: 'big checkpoint panel' }, log)));
  }
  return rows;
}
