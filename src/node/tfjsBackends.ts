/**
 * tfjs backends for Node (the CLI and the tests): cpu always; wasm from the package's .wasm files
 * (copied next to dist/cli.js by the build, or found in node_modules). WebGPU is not a tfjs
 * backend here: it is the native engine (src/engine/webgpu, through ./webgpu.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { existsSync } from 'node:fs';
import * as path from 'node:path';

export type NodeBackend = 'cpu' | 'wasm';

function wasmDir(): string {
  const candidates = [path.join(__dirname, 'wasm')];
  try {
    candidates.push(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')));
  } catch {
    // not installed next to us: only the copied files can serve
  }
  const dir = candidates.find((d) => existsSync(path.join(d, 'tfjs-backend-wasm.wasm')));
  if (!dir) throw new Error(`tfjs wasm files not found (looked in ${candidates.join(', ')})`);
  return dir;
}

export async function useNodeBackend(name: NodeBackend): Promise<void> {
  // Production mode: no per-op debug checks, and no "install tfjs-node" banner on stderr.
  tf.enableProdMode();
  if (name === 'wasm') setWasmPaths(wasmDir() + path.sep);
  if (!(await tf.setBackend(name))) throw new Error(`the tfjs ${name} backend could not start`);
  await tf.ready();
}
