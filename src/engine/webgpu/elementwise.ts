/**
 * The element-wise steps of a hybrid layer (layers/hybrid/webgpu.ts): a scaled sum of two tensors
 * (the residual adds and the families' µP multipliers), the gated activations of the MLPs and of
 * Falcon-H1's norm-less Mamba-2 (act(s·G) ⊙ U), and the concat of two [L, ·] tensors (Zamba2's
 * stream and embeddings). Each is one flat invocation per output element.
 */
import type { BufferRange, Dispatch, KernelCache, KernelSpec } from './kernel';
import { MATH_WGSL } from './math';

export const ELEMENTWISE_THREADS = 64;

/** result = alpha · A (+ beta · B). */
function combineKernel(withB: boolean): KernelSpec {
  return {
    storage: [{ name: 'A', type: 'f32' }, ...(withB ? [{ name: 'B', type: 'f32' } as const] : []), { name: 'result', type: 'f32', write: true }],
    uniforms: [['total', 'i32'], ['alpha', 'f32'], ['beta', 'f32']],
    workgroupSize: ELEMENTWISE_THREADS,
    entry: 'flat',
    body: `
fn main(index : i32) {
  if (index >= uniforms.total) { return; }
  result[index] = uniforms.alpha * A[index]${withB ? ' + uniforms.beta * B[index]' : ''};
}`,
  };
}

/** result = alpha · A (+ beta · B), over `total` elements. */
export function combineDispatch(cache: KernelCache, label: string, total: number, a: BufferRange, alpha: number, result: BufferRange, b?: { range: BufferRange; beta: number }): Dispatch {
  return cache.dispatch(label, combineKernel(!!b), cache.flatWorkgroups(total, ELEMENTWISE_THREADS), { A: a, ...(b ? { B: b.range } : {}), result }, { total, alpha, beta: b?.beta ?? 0 });
}

export type GpuActivation = 'silu' | 'gelu' | 'relu2';

/**
 * GELU with torch's exact erf, which WGSL lacks: Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7),
 * far inside the fp32 tolerance, with erf(−x) = −erf(x).
 */
const GELU_WGSL = /* wgsl */ `
fn erfOf(x : f32) -> f32 {
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  let e = 1.0 - poly * exp(-a * a);
  return select(e, -e, x < 0.0);
}
fn geluOf(v : f32) -> f32 { return 0.5 * v * (1.0 + erfOf(v * 0.7071067811865476)); }
`;

const ACTIVATION_CALL: Readonly<Record<GpuActivation, (v: string) => string>> = {
  silu: (v) => `siluOf(${v})`,
  gelu: (v) => `geluOf(${v})`,
  relu2: (v) => `select(0.0, ${v} * ${v}, ${v} > 0.0)`,
};

/** result = act(gateScale · G) (⊙ U when `gated`): an MLP's hidden layer, or y ⊙ silu(z) with G = z, U = y. */
function activationKernel(act: GpuActivation, gated: boolean): KernelSpec {
  return {
    storage: [{ name: 'G', type: 'f32' }, ...(gated ? [{ name: 'U', type: 'f32' } as const] : []), { name: 'result', type: 'f32', write: true }],
    uniforms: [['total', 'i32'], ['gateScale', 'f32']],
    workgroupSize: ELEMENTWISE_THREADS,
    entry: 'flat',
    body: `${MATH_WGSL}${act === 'gelu' ? GELU_WGSL : ''}
fn main(index : i32) {
  if (index >= uniforms.total) { return; }
  let g = uniforms.gateScale * G[index];
  result[index] = ${ACTIVATION_CALL[act]('g')}${gated ? ' * U[index]' : ''};
}`,
  };
}

/** result = act(gateScale · G) (⊙ U), over `total` elements. */
export function activationDispatch(cache: KernelCache, label: string, total: number, act: GpuActivation, gate: BufferRange, up: BufferRange | undefined, gateScale: number, result: BufferRange): Dispatch {
  return cache.dispatch(`${label} ${act}`, activationKernel(act, !!up), cache.flatWorkgroups(total, ELEMENTWISE_THREADS), { G: gate, ...(up ? { U: up } : {}), result }, { total, gateScale });
}

/** result[t] = [A[t] | B[t]]: rows of widths wa and wb side by side. */
export function concatKernel(): KernelSpec {
  return {
    storage: [{ name: 'A', type: 'f32' }, { name: 'B', type: 'f32' }, { name: 'result', type: 'f32', write: true }],
    uniforms: [['rows', 'i32'], ['wa', 'i32'], ['wb', 'i32']],
    workgroupSize: ELEMENTWISE_THREADS,
    entry: 'flat',
    body: `
fn main(index : i32) {
  let W = uniforms.wa + uniforms.wb;
  if (index >= uniforms.rows * W) { return; }
  let t = index / W;
  let j = index - t * W;
  if (j < uniforms.wa) { result[index] = A[t * uniforms.wa + j]; } else { result[index] = B[t * uniforms.wb + j - uniforms.wa]; }
}`,
  };
}
