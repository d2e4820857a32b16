/**
 * What "Compare Dumps…" sends to the panel: the engine's comparison of two tensor files
 * (compare.ts), the first non-finite value of each (nonFinite.ts) and the tokens × channels
 * error map of every compared tensor (errorMap.ts) up to a byte budget. No vscode import, so
 * the webview tests build the same message in Node.
 */
import { compareStores, readValues } from '../engine/analysis/compare';
import { errorMap } from '../engine/analysis/errorMap';
import { findNonFinite, type NonFiniteTensor } from '../engine/analysis/nonFinite';
import type { TensorStore } from '../engine/formats/safetensors';
import { toTensorMessage, type ComparisonParams, type DumpParams, type FirstNonFinite, type NamedTensors } from '../protocol';

/** Error maps sent with the comparison, in bytes (a 24-layer 130m dump's L × D maps fit easily). */
export const ERROR_MAP_BYTES = 128 * 2 ** 20;

/** `dump` is file a as the panel receives dumps; a and b are the opened files. */
export async function comparisonParams(a: TensorStore, b: TensorStore, dump: DumpParams, bName: string): Promise<ComparisonParams> {
  const c = await compareStores(a, b);
  const errorMaps: NamedTensors = {};
  let bytes = 0;
  for (const t of c.tensors) {
    if (t.shape.length === 0) continue;
    const size = t.shape[0] * (t.shape[1] ?? 1) * 4;
    if (bytes + size > ERROR_MAP_BYTES) continue;
    bytes += size;
    const inB = c.renamed.find((r) => r.name === t.name);
    const map = errorMap(
      { shape: t.shape, data: await readValues(a, inB?.a ?? t.name) },
      { shape: t.shape, data: await readValues(b, inB?.b ?? t.name) },
    );
    errorMaps[t.name] = toTensorMessage({ shape: [map.tokens, map.channels], data: map.data });
  }
  const [na, nb] = await Promise.all([findNonFinite(a), findNonFinite(b)]);
  return {
    dump,
    b: bName,
    tensors: c.tensors.map((t) => ({
      name: t.name,
      layer: t.layer,
      shape: [...t.shape],
      maxAbsError: t.maxAbsError,
      normalizedError: t.normalizedError,
      tolerance: { rtol: t.tolerance.rtol, atol: t.tolerance.atol },
      firstDivergence: t.firstDivergence && { index: t.firstDivergence.index, token: t.firstDivergence.token },
      nonFinite: { a: t.nonFinite.a, b: t.nonFinite.b },
      drift: t.drift && t.drift.map((d) => ({ start: d.start, maxAbsError: d.maxAbsError })),
    })),
    firstDivergentLayer: c.firstDivergentLayer,
    nonFinite: { a: first(na.first), b: first(nb.first) },
    errorMaps,
  };
}

function first(t: NonFiniteTensor | null): FirstNonFinite | null {
  return t && { tensor: t.tensor, layer: t.layer, quantity: t.quantity, index: t.index, token: t.token, value: String(t.value) };
}
