/**
 * The tiled matmul (src/engine/webgpu/matmul.ts) on every projection shape of the mamba-130m and
 * mamba2-130m forwards, in each tiling (4×4, 8×4, 8×8 outputs per thread) and K split, timed on
 * the GPU by timestamp queries: the measurements chooseTile and chooseSplits are set from. The
 * row marked "chosen" is what the forward runs.
 */
import { KernelCache, record, type Dispatch } from '../src/engine/webgpu/kernel';
import { chooseSplits, chooseTile, matmulDispatches, type MatmulShape, type MatmulTile } from '../src/engine/webgpu/matmul';
import { H200 } from './nativeProfile';
import type { Row } from './report';
import { median } from './timing';

const TILES: MatmulTile[] = [{ rows: 4, cols: 4 }, { rows: 8, cols: 4 }, { rows: 8, cols: 8 }];
const SPLITS = [1, 2, 4, 8];

/** GPU milliseconds of `dispatches` (median of `reps`), each in a timed pass of its own. */
async function gpuTime(device: GPUDevice, dispatches: readonly Dispatch[], reps: number): Promise<number> {
  const n = dispatches.length;
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2 * n });
  const resolved = device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const times: number[] = [];
  try {
    for (let r = 0; r < reps + 2; r++) {
      const encoder = device.createCommandEncoder();
      dispatches.forEach((d, i) => {
        const pass = encoder.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
        record(pass, [d]);
        pass.end();
      });
      encoder.resolveQuerySet(querySet, 0, 2 * n, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, read, 0, 16 * n);
      device.queue.submit([encoder.finish()]);
      await read.mapAsync(GPUMapMode.READ);
      const t = new BigInt64Array(read.getMappedRange().slice(0));
      read.unmap();
      // The first two are warm-up (pipeline first use, clocks).
      if (r >= 2) times.push(dispatches.reduce((s, _, i) => s + Number(t[2 * i + 1] - t[2 * i]) / 1e6, 0));
    }
  } finally {
    querySet.destroy();
    resolved.destroy();
    read.destroy();
  }
  return median(times);
}

export async function runMatmulSweep(device: GPUDevice, tokens: readonly number[], log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const owned: GPUBuffer[] = [];
  // Filled with values in [−1, 1): multiplying zeros draws less power, and the GPU clocks up for it.
  const buffer = (elements: number) => {
    const b = device.createBuffer({ size: 4 * elements, usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
    const data = new Float32Array(b.getMappedRange());
    let s = elements >>> 0;
    for (let i = 0; i < data.length; i++) data[i] = (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2147483648 - 1;
    b.unmap();
    owned.push(b);
    return b;
  };
  const cache = new KernelCache(device);
  try {
    for (const L of tokens) {
      const shapes: [string, MatmulShape][] = [
        ['in_proj (Mamba-1)', { M: L, N: 3072, K: 768, aOffset: 0 }],
        ['in_proj (Mamba-2)', { M: L, N: 3352, K: 768, aOffset: 0 }],
        ['x_proj', { M: L, N: 80, K: 1536, aOffset: 0 }],
        ['dt_proj', { M: L, N: 1536, K: 48, aOffset: 0 }],
        ['out_proj', { M: L, N: 768, K: 1536, aOffset: 0 }],
        ['lm_head', { M: L, N: 50280, K: 768, aOffset: 0 }],
      ];
      for (const [name, shape] of shapes) {
        log(`matmul sweep: ${name} ${shape.M}×${shape.N}×${shape.K}`);
        const x = buffer(shape.M * shape.K), w = buffer(shape.N * shape.K), y = buffer(shape.M * shape.N);
        const scratch = { cache, partials: (n: number) => buffer(n) };
        const tile0 = chooseTile(shape, false);
        const chosen = { tile: tile0, splits: chooseSplits(shape, tile0, false) };
        for (const tile of TILES) {
          for (const splits of SPLITS.filter((s) => s === 1 || shape.K / s >= 128)) {
            const d = matmulDispatches(scratch, name, { bias: false, softplus: false, residual: false, planes: [shape.N], software: false }, shape, { X: { buffer: x }, W: { buffer: w }, Y: { buffer: y } }, { tile, splits });
            const ms = await gpuTime(device, d, 5);
            const tflops = (2 * shape.M * shape.N * shape.K) / (ms * 1e9);
            const isChosen = chosen.tile.rows === tile.rows && chosen.tile.cols === tile.cols && chosen.splits === splits;
            rows.push({
              section: 'matmul sweep',
              name: `${name}, ${tile.rows}×${tile.cols} per thread, K in ${splits}${isChosen ? ' (chosen)' : ''}`,
              backend: 'webgpu-native',
              shape: `${shape.M}×${shape.N}×${shape.K}`,
              ms,
              gpuMs: ms,
              note: `${tflops.toFixed(1)} TFLOP/s (${((100 * tflops) / H200.fp32Tflops).toFixed(0)}% of fp32 peak)`,
            });
          }
        }
      }
    }
  } finally {
    owned.forEach((b) => b.destroy());
  }
  return rows;
}
