/**
 * Two dumps (or any two tensor files) compared tensor by tensor, to find where a run leaves the
 * reference: max and normalized error, the error per token, the first element that breaks
 * mamba_ssm's test tolerance, non-finite values, and the first layer where anything diverges.
 * `a` is the reference: tolerances scale with |a| and normalized errors divide by max|a|.
 */
import { DEFAULT_BUCKET } from './positionBuckets';
import type { DType } from '../formats/dtypes';
import { dumpKey, parseDumpKey } from '../formats/dump';
import type { TensorStore } from '../formats/safetensors';
import { sizeOf } from '../tensor';
import { sortForward } from './forwardOrder';

export interface Tolerance {
  readonly rtol: number;
  readonly atol: number;
}

export type ToleranceClass = 'fp32' | 'fp16' | 'bf16';

/** mamba_ssm's tests/ops/test_selective_scan.py defaults per input dtype. */
export const DEFAULT_TOLERANCE: Readonly<Record<ToleranceClass, Tolerance>> = {
  fp32: { rtol: 6e-4, atol: 2e-3 },
  fp16: { rtol: 3e-3, atol: 5e-3 },
  bf16: { rtol: 3e-2, atol: 5e-2 },
};

const LOOSENESS: readonly ToleranceClass[] = ['fp32', 'fp16', 'bf16'];

export function loosest(...classes: (ToleranceClass | undefined)[]): ToleranceClass {
  return LOOSENESS[Math.max(0, ...classes.map((c) => (c ? LOOSENESS.indexOf(c) : 0)))];
}

/** fp8/fp4 are coarser than bf16, but mamba_ssm has no tolerance for them: bf16's is the loosest there is. */
export function toleranceClassOfDType(dtype: DType): ToleranceClass {
  if (dtype === 'F16') return 'fp16';
  if (dtype === 'BF16' || dtype.startsWith('F8') || dtype === 'F4') return 'bf16';
  return 'fp32';
}

/** The run's dtype as dump metadata names it ("bfloat16", "torch.float16", "fp32", …); undefined if unknown. */
export function toleranceClassOfName(name: string | undefined): ToleranceClass | undefined {
  const n = name?.trim().toLowerCase().replace(/^torch\./, '');
  if (n === 'bfloat16' || n === 'bf16') return 'bf16';
  if (n === 'float16' || n === 'fp16' || n === 'half') return 'fp16';
  if (n === 'float32' || n === 'fp32' || n === 'float' || n === 'float64' || n === 'fp64' || n === 'double') return 'fp32';
  return undefined;
}

/** The tolerance class of one tensor: its stored dtype or the run's dtype in the metadata, whichever is looser. */
export function tensorToleranceClass(store: TensorStore, name: string): ToleranceClass {
  const info = store.info(name);
  return loosest(info && toleranceClassOfDType(info.dtype), toleranceClassOfName(store.metadata.dtype));
}

export interface Divergence {
  /** Row-major index of the element. */
  readonly index: number[];
  /** Position on the token axis (axis 0; for states h, the token h_tokens names); null for scalars. */
  readonly token: number | null;
  readonly a: number;
  readonly b: number;
}

export interface NonFiniteCount {
  readonly a: number;
  readonly b: number;
  /** The first few locations, in row-major order. */
  readonly first: { readonly tensor: 'a' | 'b'; readonly index: number[] }[];
}

export interface TensorDiff {
  /** Over the pairs where both values are finite; non-finite values are counted in nonFinite. */
  readonly maxAbsError: number;
  /** maxAbsError / max|a| (maxAbsError itself when a is all zero), as tensor.ts normalizedError. */
  readonly normalizedError: number;
  /** max |a − b| per index of axis 0 (the token axis of [L, …] tensors); NaN for a row with a non-finite value in either. */
  readonly tokenProfile: Float64Array;
  /** First element with |a − b| > atol + rtol·|a| or a non-finite value in either; null if none. */
  readonly firstDivergence: Divergence | null;
  readonly nonFinite: NonFiniteCount;
}

/** How many non-finite locations per file are listed. */
const NON_FINITE_LOCATIONS = 5;

export function unravelIndex(flat: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  for (let k = shape.length - 1; k >= 0; k--) {
    index[k] = flat % shape[k];
    flat = Math.floor(flat / shape[k]);
  }
  return index;
}

/**
 * The comparison of two same-shaped arrays. `tokenOf` maps an axis-0 index to a token position
 * when axis 0 is not the token itself (states at h_tokens).
 */
export function diffArrays(a: ArrayLike<number>, b: ArrayLike<number>, shape: readonly number[], tol: Tolerance, tokenOf: (row: number) => number = (r) => r): TensorDiff {
  const size = sizeOf(shape);
  if (a.length !== size || b.length !== size) throw new Error(`diffArrays: ${a.length} and ${b.length} elements for shape [${shape.join(', ')}]`);
  const rows = shape.length ? shape[0] : 1;
  const rowSize = rows ? size / rows : 0;
  const tokenProfile = new Float64Array(rows);
  let maxAbs = 0;
  let maxRef = 0;
  let first = -1;
  let nonA = 0;
  let nonB = 0;
  const locations: { tensor: 'a' | 'b'; flat: number }[] = [];
  for (let r = 0, i = 0; r < rows; r++) {
    let rowMax = 0;
    let rowFinite = true;
    for (let end = i + rowSize; i < end; i++) {
      const x = a[i];
      const y = b[i];
      const finiteA = Number.isFinite(x);
      const finiteB = Number.isFinite(y);
      if (!finiteA || !finiteB) {
        if (!finiteA && nonA++ < NON_FINITE_LOCATIONS) locations.push({ tensor: 'a', flat: i });
        if (!finiteB && nonB++ < NON_FINITE_LOCATIONS) locations.push({ tensor: 'b', flat: i });
        if (first < 0) first = i;
        rowFinite = false;
        continue;
      }
      const d = Math.abs(x - y);
      const ref = Math.abs(x);
      if (d > rowMax) rowMax = d;
      if (ref > maxRef) maxRef = ref;
      if (first < 0 && d > tol.atol + tol.rtol * ref) first = i;
    }
    tokenProfile[r] = rowFinite ? rowMax : NaN;
    if (rowMax > maxAbs) maxAbs = rowMax;
  }
  const at = (flat: number) => unravelIndex(flat, shape);
  let firstDivergence: Divergence | null = null;
  if (first >= 0) {
    const index = at(first);
    firstDivergence = { index, token: shape.length ? tokenOf(index[0]) : null, a: a[first], b: b[first] };
  }
  return {
    maxAbsError: maxAbs,
    normalizedError: maxRef === 0 ? maxAbs : maxAbs / maxRef,
    tokenProfile,
    firstDivergence,
    nonFinite: { a: nonA, b: nonB, first: locations.map((l) => ({ tensor: l.tensor, index: at(l.flat) })) },
  };
}

export interface TensorComparison extends TensorDiff {
  readonly name: string;
  /** null for top-level tensors (input_ids, logits). */
  readonly layer: number | null;
  readonly shape: readonly number[];
  readonly tolerance: Tolerance;
  /** max |a − b| per DEFAULT_BUCKET positions of the token axis (issue 13: fp32 numerics at length); null when the rows span one bucket. */
  readonly drift: readonly PositionDrift[] | null;
}

export interface PositionDrift {
  /** First position of the bucket. */
  readonly start: number;
  /** The largest row error among the rows at the bucket's positions; NaN when one of them holds a non-finite value. */
  readonly maxAbsError: number;
}

/** The row profile gathered by position: `tokenOf` maps a row to its position (a long dump's logits rows are its `positions`). */
export function driftByPosition(profile: Float64Array, tokenOf: (row: number) => number = (r) => r, bucket = DEFAULT_BUCKET): PositionDrift[] | null {
  const worst = new Map<number, number>();
  profile.forEach((e, row) => {
    const b = Math.floor(tokenOf(row) / bucket);
    // Math.max keeps a NaN: a bucket where fp32 went non-finite must not read as small.
    worst.set(b, Math.max(worst.get(b) ?? 0, e));
  });
  if (worst.size < 2) return null;
  return [...worst.entries()].sort((x, y) => x[0] - y[0]).map(([b, maxAbsError]) => ({ start: b * bucket, maxAbsError }));
}

export interface DumpComparison {
  /** Tensors in both files with the same shape, in forward order. */
  readonly tensors: TensorComparison[];
  readonly shapeMismatches: { readonly name: string; readonly a: readonly number[]; readonly b: readonly number[] }[];
  /** Tensors compared under the format's name though a file calls them otherwise (hf_logits → logits). */
  readonly renamed: { readonly name: string; readonly a: string; readonly b: string }[];
  readonly onlyInA: string[];
  readonly onlyInB: string[];
  /** The lowest layer with a divergent (or differently shaped) tensor; null if none. */
  readonly firstDivergentLayer: number | null;
}

/** Explicit --rtol / --atol replace the dtype defaults one by one. */
export interface ToleranceOverride {
  readonly rtol?: number;
  readonly atol?: number;
}

export function toleranceWith(cls: ToleranceClass, override: ToleranceOverride = {}): Tolerance {
  const base = DEFAULT_TOLERANCE[cls];
  return { rtol: override.rtol ?? base.rtol, atol: override.atol ?? base.atol };
}

/** float64 only when stored as float64: float32 holds every narrower float exactly and halves the memory of big logits. */
export async function readValues(store: TensorStore, name: string): Promise<Float32Array | Float64Array> {
  const t = await store.readFloat(name, store.info(name)?.dtype === 'F64' ? 'float64' : 'float32');
  return t.data;
}

/** States are stored at the tokens in the sibling h_tokens tensor: their axis 0 is an index into it. */
export async function tokenMapping(store: TensorStore, name: string): Promise<((row: number) => number) | undefined> {
  const { layer, name: quantity } = parseDumpKey(name);
  // A long run's dump keeps the logits at `positions` only (inspect --positions).
  if (layer === null && formatName(name) === 'logits' && store.info('positions')) {
    const positions = await readValues(store, 'positions');
    return (row) => positions[row] ?? row;
  }
  if (layer === null || quantity !== 'h') return undefined;
  const key = dumpKey(layer, 'h_tokens');
  if (!store.info(key)) return undefined;
  const tokens = await readValues(store, key);
  return (row) => tokens[row] ?? row;
}

/** The format's name for a tensor that dumps written from transformers call hf_logits or layers.i.hf_out (shared fixtures). */
function formatName(key: string): string {
  const { layer, name } = parseDumpKey(key);
  if (layer === null) return name === 'hf_logits' ? 'logits' : key;
  return name === 'hf_out' ? dumpKey(layer, 'out') : key;
}

/**
 * Pairs the tensors of two files: by name, then, among the rest, by the format's name — so one
 * file's hf_logits meets the other's logits; and two single-tensor files (ref.npy, kernel.npy,
 * each named after its file) with each other. Returns [entry name, name in a, name in b].
 */
function pairTensors(a: TensorStore, b: TensorStore): { pairs: [string, string, string][]; onlyInA: string[]; onlyInB: string[] } {
  const inB = new Set(b.names());
  const pairs: [string, string, string][] = a.names().filter((n) => inB.has(n)).map((n) => [n, n, n]);
  const paired = new Set(pairs.map((p) => p[0]));
  const restB = new Map(b.names().filter((n) => !paired.has(n)).map((n) => [formatName(n), n]));
  const onlyInA: string[] = [];
  for (const n of a.names().filter((x) => !paired.has(x))) {
    const other = restB.get(formatName(n));
    if (other === undefined) onlyInA.push(n);
    else {
      pairs.push([formatName(n), n, other]);
      restB.delete(formatName(n));
    }
  }
  if (!pairs.length && a.names().length === 1 && b.names().length === 1) return { pairs: [[a.names()[0], a.names()[0], b.names()[0]]], onlyInA: [], onlyInB: [] };
  return { pairs, onlyInA, onlyInB: [...restB.values()] };
}

export async function compareStores(a: TensorStore, b: TensorStore, override: ToleranceOverride = {}): Promise<DumpComparison> {
  const { pairs, onlyInA, onlyInB } = pairTensors(a, b);
  const order = sortForward(pairs.map((p) => p[0]));
  pairs.sort((x, y) => order.indexOf(x[0]) - order.indexOf(y[0]));
  const tensors: TensorComparison[] = [];
  const shapeMismatches: DumpComparison['shapeMismatches'] = [];
  const renamed: DumpComparison['renamed'] = [];
  let firstDivergentLayer: number | null = null;
  const diverged = (layer: number | null) => {
    if (layer !== null && (firstDivergentLayer === null || layer < firstDivergentLayer)) firstDivergentLayer = layer;
  };
  for (const [name, inA, inB] of pairs) {
    if (inA !== inB) renamed.push({ name, a: inA, b: inB });
    const shapeA = a.info(inA)!.shape;
    const shapeB = b.info(inB)!.shape;
    const { layer } = parseDumpKey(name);
    if (shapeA.length !== shapeB.length || shapeA.some((d, k) => d !== shapeB[k])) {
      shapeMismatches.push({ name, a: shapeA, b: shapeB });
      diverged(layer);
      continue;
    }
    const tolerance = toleranceWith(loosest(tensorToleranceClass(a, inA), tensorToleranceClass(b, inB)), override);
    const tokenOf = await tokenMapping(a, inA);
    const diff = diffArrays(await readValues(a, inA), await readValues(b, inB), shapeA, tolerance, tokenOf);
    if (diff.firstDivergence) diverged(layer);
    tensors.push({ name, layer, shape: shapeA, tolerance, ...diff, drift: shapeA.length ? driftByPosition(diff.tokenProfile, tokenOf) : null });
  }
  return {
    tensors,
    shapeMismatches,
    renamed,
    onlyInA: sortForward(onlyInA),
    onlyInB: sortForward(onlyInB),
    firstDivergentLayer,
  };
}

/** The `compare --json` contract (issue 5): exactly these keys; NaN/Infinity become null. */
export function comparisonJson(c: DumpComparison): unknown {
  return {
    tensors: c.tensors.map((t) => ({
      name: t.name,
      shape: [...t.shape],
      maxAbsError: t.maxAbsError,
      normalizedError: t.normalizedError,
      firstDivergence: t.firstDivergence && { index: t.firstDivergence.index, token: t.firstDivergence.token },
      nonFinite: { a: t.nonFinite.a, b: t.nonFinite.b, first: t.nonFinite.first },
    })),
    firstDivergentLayer: c.firstDivergentLayer,
  };
}
