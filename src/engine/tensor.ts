/**
 * The plain tensor used everywhere outside tfjs: a row-major typed array with a shape.
 * Float data is Float64Array in the reference path and Float32Array elsewhere; integer tensors
 * (input_ids, h_tokens) keep their integer type so dumps round-trip exactly.
 */
export type FloatArray = Float32Array | Float64Array;
/** Picks a computation's output precision: the reference passes Float64Array, the host-loop tfjs kernels Float32Array. */
export type FloatCtor = Float32ArrayConstructor | Float64ArrayConstructor;
export type IntArray = Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array | BigInt64Array | BigUint64Array;
export type TensorData = FloatArray | IntArray;

export interface Tensor<D extends TensorData = TensorData> {
  readonly shape: readonly number[];
  readonly data: D;
}

export type FloatTensor = Tensor<FloatArray>;

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor<D extends TensorData>(data: D, shape: readonly number[]): Tensor<D> {
  if (data.length !== sizeOf(shape)) {
    throw new Error(`tensor data has ${data.length} elements, shape [${shape.join(', ')}] needs ${sizeOf(shape)}`);
  }
  return { shape: [...shape], data };
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function toFloat64(t: Tensor): Tensor<Float64Array> {
  if (t.data instanceof Float64Array) return t as Tensor<Float64Array>;
  const out = new Float64Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Number(t.data[i]);
  return { shape: t.shape, data: out };
}

export function toFloat32(t: Tensor): Tensor<Float32Array> {
  if (t.data instanceof Float32Array) return t as Tensor<Float32Array>;
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Number(t.data[i]);
  return { shape: t.shape, data: out };
}

/** Rows [start, end) of the first axis, as a view (no copy). */
export function sliceRows<D extends TensorData>(t: Tensor<D>, start: number, end: number): Tensor<D> {
  const row = sizeOf(t.shape.slice(1));
  return { shape: [end - start, ...t.shape.slice(1)], data: t.data.subarray(start * row, end * row) as D };
}

/**
 * max|got − ref| / max|ref| — the "normalized error" of the issues and the tests.
 * A NaN anywhere makes it NaN, so a comparison can never pass by accident.
 */
export function normalizedError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (got.length !== ref.length) throw new Error(`normalizedError: length ${got.length} vs ${ref.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > maxDiff) maxDiff = d;
    const r = Math.abs(ref[i]);
    if (r > maxRef) maxRef = r;
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}

export function maxAbsError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > m) m = d;
  }
  return m;
}

export function mean(data: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < data.length; i++) s += data[i];
  return data.length ? s / data.length : NaN;
}

/** The Euclidean norm of each row of a [rows, cols] tensor (a hybrid path's output per token). */
export function rowNorms(t: Tensor<Float32Array | Float64Array>): Float64Array {
  const [rows, cols] = t.shape;
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let j = 0; j < cols; j++) ss += t.data[i * cols + j] ** 2;
    out[i] = Math.sqrt(ss);
  }
  return out;
}
