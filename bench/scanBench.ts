/**
 * (a) One mamba-130m layer's scan (L 2048, D 1536, N 16, with the silu(z) gate): the WGSL scan
 * fused and chunked, the tfjs-ops scan on the same backend, and a plain JS float32 loop; plus
 * the fused conv1d + SiLU against tfjs's pad + depthwise conv + SiLU.
 */
import * as tf from '@tensorflow/tfjs-core';
import { webgpuConvSilu } from '../src/engine/kernels/convSilu';
import { defaultChunkLength, webgpuHeadScan, webgpuScanChunked, webgpuScanFused } from '../src/engine/kernels/scan';
import { tfjsOpsScan, type TfHeadScanInputs, type TfScanInputs, type TfScanOutputs } from '../src/engine/tfjs/scan';
import { gate, type F64 } from '../src/engine/reference/ops';
import { selectiveScan } from '../src/engine/reference/scan';
import type { Row } from './report';
import { gpuKernelMs, timeAsync, timeTensorCall } from './timing';

export const LAYER = { L: 2048, D: 1536, N: 16 } as const;

/** u, Δ, z in; y out; B, C in (float32): what a scan has to move at the least. */
export function scanBytes(L: number, D: number, N: number): number {
  return 4 * (4 * L * D + 2 * L * N);
}

export interface ScanBenchOptions {
  /** A CPU WebGPU (SwiftShader): chunking only costs there, and the tfjs-ops scan is too slow at full length. */
  readonly software: boolean;
  /** Tokens the tfjs-ops scan runs (its time is scaled to L: it is linear in L). */
  readonly opsTokens: number;
  /** Chunk lengths to try besides the default. */
  readonly chunkSweep: readonly number[];
  readonly jsReps: number;
}

function layerInputs(L: number, D: number, N: number): TfScanInputs {
  const r = (shape: number[], lo: number, hi: number, seed: number) => tf.randomUniform(shape, lo, hi, 'float32', seed);
  return {
    u: r([L, D], -1, 1, 1) as tf.Tensor2D,
    delta: tf.exp(r([L, D], Math.log(1e-3), Math.log(0.1), 2)) as tf.Tensor2D,
    A: tf.neg(tf.exp(r([D, N], 0, Math.log(16), 3))) as tf.Tensor2D,
    B: r([L, N], -1, 1, 4) as tf.Tensor2D,
    C: r([L, N], -1, 1, 5) as tf.Tensor2D,
    D: r([D], 0, 1, 6) as tf.Tensor1D,
    z: r([L, D], -2, 2, 7) as tf.Tensor2D,
    statesAt: new Int32Array(),
  };
}

const outputs = (o: TfScanOutputs): tf.Tensor[] => [o.y, ...(o.gated ? [o.gated] : []), ...(o.h ? [o.h] : [])];

export async function runScanBench(opts: ScanBenchOptions, log: (s: string) => void): Promise<Row[]> {
  const { L, D, N } = LAYER;
  const bytes = scanBytes(L, D, N);
  const shape = `L ${L} D ${D} N ${N}`;
  const inputs = layerInputs(L, D, N);
  const rows: Row[] = [];
  const gbps = (ms: number) => bytes / (ms * 1e-3) / 1e9;

  const wgsl = async (name: string, call: () => TfScanOutputs, note: string) => {
    log(`scan: ${name}`);
    const t = await timeTensorCall(() => outputs(call()));
    const gpu = await gpuKernelMs(() => outputs(call()));
    rows.push({ section: 'scan', name, backend: 'webgpu', shape, ms: t.ms, gpuMs: gpu, gbps: gbps(gpu ?? t.ms), note: `${note}; ${t.batch} calls per sync` });
  };
  await wgsl('WGSL fused (1 pass, 1 invocation per channel)', () => webgpuScanFused(inputs), `${D} invocations`);
  const chunkDefault = defaultChunkLength(L, D, opts.software);
  const chunks = [...new Set([...(chunkDefault < L ? [chunkDefault] : []), ...opts.chunkSweep])].filter((c) => c < L);
  for (const c of chunks) {
    await wgsl(`WGSL chunked, ${c} tokens per chunk${c === chunkDefault ? ' (default)' : ''}`, () => webgpuScanChunked(inputs, c), `${Math.ceil(L / c) * D} invocations, 3 passes`);
  }

  if (!opts.software) {
    // Mamba-2 at mamba2-130m's shape: 24 heads of 64 channels, N 128, one group.
    const heads = 24, P = 64, N2 = 128;
    const r = (shape: number[], lo: number, hi: number) => tf.randomUniform(shape, lo, hi);
    const h = { x: r([L, heads * P], -1, 1), delta: r([L, heads], 1e-3, 0.1), A: r([heads], -8, -1), B: r([L, N2], -1, 1), C: r([L, N2], -1, 1), D: r([heads], 0, 1), groups: 1, statesAt: new Int32Array() } as unknown as TfHeadScanInputs;
    log('scan: Mamba-2 head scan');
    const t = await timeTensorCall(() => [webgpuHeadScan(h).y]);
    const gpu = await gpuKernelMs(() => [webgpuHeadScan(h).y]);
    const headBytes = 4 * (2 * L * heads * P + L * heads + 2 * L * N2);
    rows.push({ section: 'scan', name: 'WGSL Mamba-2 head scan (default chunking)', backend: 'webgpu', shape: `L ${L}, 24 heads × 64, N 128`, ms: t.ms, gpuMs: gpu, gbps: headBytes / ((gpu ?? t.ms) * 1e-3) / 1e9, note: `${t.batch} calls per sync; no gate (Mamba-2 gates after its norm)` });
    tf.dispose(Object.values(h).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
  }

  // The tfjs-ops scan: log-depth prefix scans of [128, D, N] chunks, dozens of dispatches per chunk.
  const opsL = Math.min(L, opts.opsTokens);
  log(`scan: tfjs-ops (${opsL} tokens)`);
  const opsInputs = opsL === L ? inputs : sliceTokens(inputs, opsL);
  const ops = await timeTensorCall(() => outputs(tfjsOpsScan(opsInputs)), { reps: opsL === L ? 3 : 1, targetMs: 0 });
  const opsMs = (ops.ms * L) / opsL;
  rows.push({
    section: 'scan', name: 'tfjs-ops scan (chunked prefix scan of tfjs ops)', backend: 'webgpu', shape, ms: opsMs, gbps: gbps(opsMs),
    note: opsL === L ? '' : `measured at ${opsL} tokens (${ops.ms.toFixed(0)} ms) and scaled ×${L / opsL}: linear in L`,
  });

  rows.push(...(await checkAgainstReference(inputs, chunks[0] ?? 128, log)));

  log('scan: JS float32 loop');
  const host = await Promise.all([inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z!].map((t) => t.data() as Promise<Float32Array>));
  const js = await timeAsync(async () => void jsScan(host, L, D, N), opts.jsReps);
  rows.push({ section: 'scan', name: 'plain JS float32 loop', backend: 'js', shape, ms: js.ms, gbps: gbps(js.ms), note: 'one thread' });

  log('conv: WGSL conv1d + SiLU vs tfjs ops');
  const x = inputs.u, K = 4;
  const w = tf.randomUniform([D, K], -0.5, 0.5, 'float32', 8) as tf.Tensor2D;
  const b = tf.randomUniform([D], -0.5, 0.5, 'float32', 9) as tf.Tensor1D;
  const filter = tf.reshape(tf.transpose(w), [K, 1, D, 1]) as tf.Tensor4D;
  const convBytes = 4 * (2 * L * D + D * K + D);
  for (const [name, call] of [
    ['WGSL causal conv1d + SiLU, fused', () => webgpuConvSilu(x, w, b)],
    ['tfjs pad + depthwiseConv2d + bias + SiLU', () => tf.tidy(() => {
      const padded = tf.pad(tf.reshape(x, [1, L, 1, D]) as tf.Tensor4D, [[0, 0], [K - 1, 0], [0, 0], [0, 0]]);
      const conv = tf.add(tf.reshape(tf.depthwiseConv2d(padded, filter, 1, 'valid'), [L, D]), b);
      return tf.mul(conv, tf.sigmoid(conv));
    })],
  ] as const) {
    const t = await timeTensorCall(() => [call()]);
    const gpu = await gpuKernelMs(() => [call()]);
    rows.push({ section: 'conv', name, backend: 'webgpu', shape: `L ${L} C ${D} K ${K}`, ms: t.ms, gpuMs: gpu, gbps: convBytes / ((gpu ?? t.ms) * 1e-3) / 1e9, note: `${t.batch} calls per sync` });
  }
  tf.dispose([w, b, filter, ...Object.values(inputs).filter((v): v is tf.Tensor => v instanceof tf.Tensor)]);
  if (opsInputs !== inputs) tf.dispose(Object.values(opsInputs).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
  return rows;
}

/**
 * The timed kernels' results against the float64 reference on the same inputs, so a speed figure
 * from another GPU (another exp, another compiler) comes with its accuracy.
 */
async function checkAgainstReference(inputs: TfScanInputs, chunkLen: number, log: (s: string) => void): Promise<Row[]> {
  log('scan: accuracy against the float64 reference');
  const { L, D, N } = LAYER;
  const f64 = async (t: tf.Tensor): Promise<F64> => ({ shape: t.shape, data: Float64Array.from(await t.data()) });
  const [u, delta, A, B, C, Dk, z] = await Promise.all([inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z!].map(f64));
  const ref = selectiveScan(u, delta, A, B, C, Dk, new Int32Array());
  const refGated = gate(ref.y, z);
  const rows: Row[] = [];
  for (const [name, run] of [['WGSL fused', () => webgpuScanFused(inputs)], [`WGSL chunked (${chunkLen})`, () => webgpuScanChunked(inputs, chunkLen)]] as const) {
    const out = run();
    const worst = (got: ArrayLike<number>, want: F64) => {
      let w = 0;
      for (let i = 0; i < got.length; i++) {
        const e = Math.abs(got[i] - want.data[i]) / (2e-3 + 6e-4 * Math.abs(want.data[i]));
        w = Number.isNaN(e) ? NaN : Math.max(w, e);
      }
      return w;
    };
    const e = Math.max(worst(await out.y.data(), ref.y), worst(await out.gated!.data(), refGated));
    tf.dispose(outputs(out));
    rows.push({ section: 'accuracy', name: `${name} vs float64 reference`, backend: 'webgpu', shape: `L ${L} D ${D} N ${N}`, ms: NaN, note: `max |err| / (2e-3 + 6e-4·|ref|) over y and gated = ${e.toExponential(2)} (≤ 1 is within mamba_ssm's fp32 tolerance)` });
  }
  return rows;
}

function sliceTokens(i: TfScanInputs, L: number): TfScanInputs {
  const rows = <T extends tf.Tensor>(t: T) => tf.slice(t, 0, L) as T;
  return { ...i, u: rows(i.u), delta: rows(i.delta), B: rows(i.B), C: rows(i.C), z: rows(i.z!), A: tf.clone(i.A), D: tf.clone(i.D) };
}

/** The scan as a float32 loop over tokens, channels and states (the gate included, like the WGSL scan). */
function jsScan([u, delta, A, B, C, Dk, z]: Float32Array[], L: number, D: number, N: number): Float32Array {
  const h = new Float32Array(D * N);
  const out = new Float32Array(2 * L * D);
  for (let t = 0; t < L; t++) {
    for (let d = 0; d < D; d++) {
      const i = t * D + d;
      const dt = delta[i], x = u[i], dx = dt * x;
      let acc = 0;
      for (let n = 0; n < N; n++) {
        const s = d * N + n;
        h[s] = Math.exp(dt * A[s]) * h[s] + dx * B[t * N + n];
        acc += h[s] * C[t * N + n];
      }
      const y = acc + Dk[d] * x;
      out[i] = y;
      out[L * D + i] = (y * z[i]) / (1 + Math.exp(-z[i]));
    }
  }
  return out;
}
