/**
 * The NaN/Inf finder: every tensor of a dump that holds a non-finite value, in forward order, and
 * the first of them — the layer and quantity where the computation first broke. Everything after
 * it is usually poisoned by it, so the first is the one to look at.
 */
import { isFloatDType } from '../formats/dtypes';
import { parseDumpKey } from '../formats/dump';
import type { TensorStore } from '../formats/safetensors';
import { readValues, tokenMapping, unravelIndex } from './compare';
import { sortForward } from './forwardOrder';

export interface NonFiniteTensor {
  readonly tensor: string;
  /** null for top-level tensors (logits). */
  readonly layer: number | null;
  /** The quantity within the layer (delta, y, …) or the top-level name. */
  readonly quantity: string;
  readonly count: number;
  readonly nanCount: number;
  /** The first non-finite element, row-major, and its value (NaN, Infinity or -Infinity). */
  readonly index: number[];
  /** The token of axis 0 (for states h, the token h_tokens names); null for scalars. */
  readonly token: number | null;
  readonly value: number;
}

export interface NonFiniteReport {
  /** The earliest non-finite tensor in forward order; null when the dump is all finite. */
  readonly first: NonFiniteTensor | null;
  readonly tensors: NonFiniteTensor[];
}

export async function findNonFinite(store: TensorStore): Promise<NonFiniteReport> {
  const tensors: NonFiniteTensor[] = [];
  for (const name of sortForward(store.names())) {
    const info = store.info(name)!;
    if (!isFloatDType(info.dtype)) continue;
    const data = await readValues(store, name);
    let count = 0;
    let nanCount = 0;
    let first = -1;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (Number.isFinite(v)) continue;
      if (first < 0) first = i;
      count++;
      if (Number.isNaN(v)) nanCount++;
    }
    if (first < 0) continue;
    const { layer, name: quantity } = parseDumpKey(name);
    const index = unravelIndex(first, info.shape);
    const tokenOf = (await tokenMapping(store, name)) ?? ((row: number) => row);
    tensors.push({ tensor: name, layer, quantity, count, nanCount, index, token: index.length ? tokenOf(index[0]) : null, value: data[first] });
  }
  return { first: tensors[0] ?? null, tensors };
}
