/**
 * The tfjs scans a test runs on: the cpu/wasm host loop (hostLoopScan.ts, on cpu and on wasm with
 * its own weight layout) and the chunked prefix scan webgl runs (scan.ts), here on the wasm
 * kernels under another backend name, so the forward picks it as it does for webgl.
 */
import * as tf from '@tensorflow/tfjs-core';
import { useNodeBackend } from '../../src/node/tfjsBackends';

/**
 * A backend running the wasm kernels under a name that is neither cpu nor wasm: scanKernelsFor
 * gives it the prefix scan and layoutFor the in-out layout, as webgl (the wasm kernels, not the
 * cpu ones: the prefix scan's broadcasting ops are several times faster there).
 */
const PREFIX_SCAN_BACKEND = 'wasm-prefix-scan';

async function usePrefixScanBackend(): Promise<void> {
  await useNodeBackend('wasm');
  if (!tf.findBackend(PREFIX_SCAN_BACKEND)) {
    for (const k of tf.getKernelsForBackend('wasm')) tf.registerKernel({ ...k, backendName: PREFIX_SCAN_BACKEND });
    tf.registerBackend(PREFIX_SCAN_BACKEND, tf.findBackendFactory('wasm'));
  }
  if (!(await tf.setBackend(PREFIX_SCAN_BACKEND))) throw new Error('the prefix-scan backend could not start');
}

export const SCANS = [
  ['host loop (cpu)', () => useNodeBackend('cpu')],
  ['host loop (wasm)', () => useNodeBackend('wasm')],
  ['prefix scan (webgl path)', usePrefixScanBackend],
] as const;
