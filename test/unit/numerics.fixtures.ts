/** Shared inputs of the numerics tests: fixture paths and small random scan problems. */
import * as path from 'node:path';
import { encodeSafetensors, SafetensorsFile, type NamedTensor, type TensorStore } from '../../src/engine/formats/safetensors';
import { MemorySource } from '../../src/engine/io';
import type { ScanInputs } from '../../src/engine/reference/scanVariants';
import { NodeFileSource } from '../../src/node/files';

export const FIXTURES = path.join(__dirname, '..', 'fixtures');
export const MODEL = path.join(FIXTURES, 'mamba1-tiny');
export const GOLDEN = path.join(FIXTURES, 'dumps', 'mamba1-sample1.safetensors');
export const GOLDEN_BF16 = path.join(FIXTURES, 'dumps', 'mamba1-sample1-bf16.safetensors');

export async function openDump(file: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(await NodeFileSource.open(file));
}

/** Every tensor of `store` (native dtype) with `edit` applied to copies of the named ones. */
export async function editedCopy(store: TensorStore, edit: Record<string, (data: Float32Array) => void>, metadata = store.metadata): Promise<Uint8Array> {
  const entries: NamedTensor[] = [];
  for (const name of store.names()) {
    const t = await store.readNative(name);
    if (edit[name]) {
      const data = Float32Array.from(t.data as Float32Array);
      edit[name](data);
      entries.push({ name, tensor: { shape: t.shape, data } });
    } else entries.push({ name, tensor: t });
  }
  return encodeSafetensors(entries, { ...metadata });
}

export async function memoryDump(name: string, bytes: Uint8Array): Promise<SafetensorsFile> {
  return SafetensorsFile.open(new MemorySource(name, bytes));
}

/** A deterministic generator (tests must not depend on Math.random). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * A random scan problem in the ranges trained models show: Δ in (0, 0.6), A_log in (−1, 3)
 * (A from −0.4 to −20), u, B, C in (−2, 2). Mamba-2 when `heads` is given.
 */
export function randomScan(seed: number, L: number, channels: number, N: number, mamba2?: { heads: number; groups: number }): ScanInputs {
  const r = lcg(seed);
  const fill = (n: number, lo: number, hi: number) => Float64Array.from({ length: n }, () => lo + (hi - lo) * r());
  const deltaWidth = mamba2 ? mamba2.heads : channels;
  const groups = mamba2?.groups ?? 1;
  return {
    u: { shape: [L, channels], data: fill(L * channels, -2, 2) },
    delta: { shape: [L, deltaWidth], data: fill(L * deltaWidth, 0, 0.6) },
    B: { shape: [L, groups * N], data: fill(L * groups * N, -2, 2) },
    C: { shape: [L, groups * N], data: fill(L * groups * N, -2, 2) },
    aLog: mamba2 ? { shape: [mamba2.heads], data: fill(mamba2.heads, -1, 3) } : { shape: [channels, N], data: fill(channels * N, -1, 3) },
    D: { shape: [deltaWidth], data: fill(deltaWidth, -1, 1) },
    groups,
  };
}
