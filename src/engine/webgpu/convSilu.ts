/**
 * Mamba's causal depthwise conv1d + SiLU (the float64 reference's causalConvSilu is the oracle):
 *   out[t, c] = silu(b[c] + Σ_k w[c, k] · x[t − K + 1 + k, c]),  x = 0 before the first token
 * (or, with `before`, the rows of Before [K − 1, C]: the context a carried run starts from, the
 * reference's conv_state, oldest first), summed in the reference's order. X is a plain [L, C]
 * plane; the output goes to column planes (Mamba-2 splits xBC into u, B and C here).
 * With a patch-state (`patched`), positions after uniforms.patchToken read the rows of Patch
 * [K − 1, C] (another run's inputs of positions patchToken − K + 2 … patchToken, oldest first)
 * in place of those positions' own inputs, before X and Before (the reference's convInput).
 */
import type { BufferRange, Dispatch, KernelSpec } from './kernel';
import type { CaptureSource, LayerContext } from './layer';
import { MATH_WGSL } from './math';
import type { ConvPatchBinding } from './patch';
import { planeIndexWgsl } from './planes';

export const CONV_THREADS = 64;

/** WGSL: whether the conv input of position `src` is the patch's when position `reader` reads it, for a conv of width K. */
const fromPatch = (K: number, src: string, reader: string) => `${reader} > uniforms.patchToken && ${src} <= uniforms.patchToken && ${src} > uniforms.patchToken - ${K - 1}`;
/** WGSL: the patch's element for position `src`, channel c. */
const patchElement = (K: number, src: string) => `Patch[(${src} - uniforms.patchToken + ${K - 2}) * C + c]`;

export function convSiluKernel(K: number, bias: boolean, planes: readonly number[], before = false, patched = false): KernelSpec {
  const taps = Array.from({ length: K }, (_, k) => {
    const back = K - 1 - k;
    const tap = (x: string) => `s = s + W[c * ${K} + ${k}] * ${x};`;
    if (back === 0) return tap('X[index]');
    // Token t − back < 0 is row K − 1 + t − back of the context.
    const own = `if (t >= ${back}) { ${tap(`X[index - ${back} * C]`)} }${before ? ` else { ${tap(`Before[(t + ${K - 1 - back}) * C + c]`)} }` : ''}`;
    return patched ? `if (${fromPatch(K, `t - ${back}`, 't')}) { ${tap(patchElement(K, `t - ${back}`))} } else { ${own} }` : own;
  });
  return {
    storage: [
      { name: 'X', type: 'f32' },
      { name: 'W', type: 'f32' },
      ...(bias ? [{ name: 'Bias', type: 'f32' } as const] : []),
      ...(before ? [{ name: 'Before', type: 'f32' } as const] : []),
      ...(patched ? [{ name: 'Patch', type: 'f32' } as const] : []),
      { name: 'result', type: 'f32', write: true },
    ],
    uniforms: [['rows', 'i32'], ['channels', 'i32'], ...(patched ? [['patchToken', 'i32'] as const] : [])],
    workgroupSize: CONV_THREADS,
    entry: 'flat',
    body: `${MATH_WGSL}
${planeIndexWgsl('outAt', planes)}
fn main(index : i32) {
  let C = uniforms.channels;
  if (index >= uniforms.rows * C) { return; }
  let t = index / C;
  let c = index - t * C;
  var s = ${bias ? 'Bias[c]' : '0.0'};
  ${taps.join('\n  ')}
  result[outAt(uniforms.rows, t, c)] = siluOf(s);
}`,
  };
}

/**
 * conv_state at the captured positions (the reference's convWindows): for position t_i, the K − 1
 * conv inputs ending at t_i, oldest first, [T, K − 1, C]: X's rows, or the context Before for a
 * row before token 0 (zero without one), or the patch's rows (convSiluKernel) where position
 * t_i + 1 reads them. Positions holds the t_i (as f32: exact below 2^24).
 */
export function convWindowsKernel(K: number, before: boolean, patched = false): KernelSpec {
  return {
    storage: [
      { name: 'X', type: 'f32' },
      { name: 'Positions', type: 'f32' },
      ...(before ? [{ name: 'Before', type: 'f32' } as const] : []),
      ...(patched ? [{ name: 'Patch', type: 'f32' } as const] : []),
      { name: 'result', type: 'f32', write: true },
    ],
    uniforms: [['windows', 'i32'], ['channels', 'i32'], ...(patched ? [['patchToken', 'i32'] as const] : [])],
    workgroupSize: CONV_THREADS,
    entry: 'flat',
    body: `
fn main(index : i32) {
  let C = uniforms.channels;
  if (index >= uniforms.windows * ${K - 1} * C) { return; }
  let row = index / C;
  let c = index - row * C;
  let i = row / ${K - 1};
  let r = row - i * ${K - 1};
  let src = i32(Positions[i]) - ${K - 2} + r;
  var v = 0.0;
  ${patched ? `if (${fromPatch(K, 'src', 'i32(Positions[i]) + 1')}) { v = ${patchElement(K, 'src')}; } else ` : ''}if (src >= 0) { v = X[src * C + c]; }${before ? ` else { v = Before[(${K - 1} + src) * C + c]; }` : ''}
  result[index] = v;
}`,
  };
}

/**
 * The dispatch that writes conv_state at the plan's state positions from the conv's input X (a
 * plain [L, C] plane) and its context before token 0, and where it is. Layers share the buffer:
 * each layer's captures are copied out before the next one runs.
 */
export function convStateCapture(ctx: LayerContext, label: string, K: number, C: number, x: BufferRange, before?: GPUBuffer, patch?: ConvPatchBinding): { dispatch: Dispatch; source: CaptureSource } {
  const T = ctx.statesAt.length;
  const elements = T * (K - 1) * C;
  const out = ctx.shared(convStateCapture, () => ctx.allocate('conv_state', elements), `${elements}`);
  const positions = ctx.shared(convStateCapture, () => ctx.constant('state positions', Float32Array.from(ctx.statesAt)), 'positions');
  return {
    dispatch: ctx.cache.dispatch(`${label} conv_state`, convWindowsKernel(K, !!before, !!patch), ctx.cache.flatWorkgroups(elements, CONV_THREADS),
      { X: x, Positions: { buffer: positions }, ...(before ? { Before: { buffer: before } } : {}), ...patch?.storage, result: { buffer: out } }, { windows: T, channels: C, ...patch?.uniforms }),
    source: { range: { buffer: out, offset: 0, size: 4 * elements }, shape: [T, K - 1, C] },
  };
}
