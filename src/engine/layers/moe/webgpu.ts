/**
 * The families' mixtures of experts on WebGPU, routed as the float64 reference routes
 * (./reference.ts, the oracle: route()): the router's logits, then one invocation per token picks
 * the top k (ties to the lower expert index) and weighs them (Jamba's softmax over all experts,
 * not renormalised; Granite's softmax over the k). Each expert then runs its SwiGLU over every
 * token and is added with the token's weight for it, skipped where that is 0: a dense form that
 * needs no gather or scatter, at E/k times the chosen experts' work (docs/PERFORMANCE.md).
 */
import type { MoeOp } from '../hybrid/config';
import type { GpuOpWeights } from '../attention/webgpu';
import { activationDispatch, ELEMENTWISE_THREADS } from '../../webgpu/elementwise';
import type { Dispatch, KernelSpec } from '../../webgpu/kernel';
import { plane, projectionDispatches, whole, type CaptureSource, type LayerContext, type LayerScratch } from '../../webgpu/layer';
import { planeLayout } from '../../webgpu/planes';

/** Experts [L, k] (as floats, the dump's form) and Weights [L, k], and Gate [L, E]: each expert's weight for the token, 0 where not chosen. */
function routingKernel(op: MoeOp): KernelSpec {
  const E = op.experts, k = op.topK;
  const jamba = op.routing === 'softmax-topk';
  return {
    storage: [{ name: 'Logits', type: 'f32' }, { name: 'Experts', type: 'f32', write: true }, { name: 'Weights', type: 'f32', write: true }, { name: 'Gate', type: 'f32', write: true }],
    uniforms: [['rows', 'i32']],
    workgroupSize: ELEMENTWISE_THREADS,
    entry: 'flat',
    body: `
fn main(t : i32) {
  if (t >= uniforms.rows) { return; }
  let row = t * ${E};
  var chosen : array<i32, ${k}>;
  var best : array<f32, ${k}>;
  for (var j = 0; j < ${k}; j = j + 1) {
    var e0 = -1;
    var v0 = 0.0;
    for (var e = 0; e < ${E}; e = e + 1) {
      var taken = false;
      for (var q = 0; q < j; q = q + 1) { if (chosen[q] == e) { taken = true; } }
      let v = Logits[row + e];
      if (!taken && (e0 < 0 || v > v0)) { e0 = e; v0 = v; }
    }
    chosen[j] = e0;
    best[j] = v0;
  }
  // best[0] is the largest logit: the softmax's shift.
  var sum = 0.0;
  ${jamba ? `for (var e = 0; e < ${E}; e = e + 1) { sum = sum + exp(Logits[row + e] - best[0]); }` : `for (var j = 0; j < ${k}; j = j + 1) { sum = sum + exp(best[j] - best[0]); }`}
  for (var e = 0; e < ${E}; e = e + 1) { Gate[row + e] = 0.0; }
  for (var j = 0; j < ${k}; j = j + 1) {
    let share = exp(best[j] - best[0]) / sum;
    Experts[t * ${k} + j] = f32(chosen[j]);
    Weights[t * ${k} + j] = share;
    Gate[row + chosen[j]] = share;
  }
}`,
  };
}

/** Out (=, for the first expert, else +=) Gate[t, e] · Y[t] where that weight is not 0. */
function accumulateKernel(experts: number, first: boolean): KernelSpec {
  return {
    storage: [{ name: 'Gate', type: 'f32' }, { name: 'Y', type: 'f32' }, { name: 'Out', type: 'f32', write: true }],
    uniforms: [['rows', 'i32'], ['width', 'i32'], ['expert', 'i32']],
    workgroupSize: ELEMENTWISE_THREADS,
    entry: 'flat',
    body: `
fn main(index : i32) {
  if (index >= uniforms.rows * uniforms.width) { return; }
  let g = Gate[(index / uniforms.width) * ${experts} + uniforms.expert];
  var v = ${first ? '0.0' : 'Out[index]'};
  if (g != 0.0) { v = v + g * Y[index]; }
  Out[index] = v;
}`,
  };
}

export interface GpuMoeStep {
  readonly dispatches: Dispatch[];
  readonly out: GPUBuffer;
  readonly experts: CaptureSource;
  readonly weights: CaptureSource;
}

/** Where the upload keeps Granite's expert slices of its fused [E, 2I, H] and [E, H, I] tensors. */
export const fusedExpertKey = (op: MoeOp, e: number, which: 'gate_up' | 'down') => `${op.key}experts.${e}.${which}`;

export function moeGpu(op: MoeOp, w: GpuOpWeights, x: GPUBuffer, H: number, label: string, ctx: LayerContext, scratch: LayerScratch): GpuMoeStep {
  const { cache, L } = ctx;
  const E = op.experts, k = op.topK, I = op.intermediate;
  const logits = scratch(`${label} router`, L * E);
  const experts = scratch(`${label} experts`, L * k), weights = scratch(`${label} expert weights`, L * k), gate = scratch(`${label} gate`, L * E);
  // Each expert's [gate | up]: one fused projection's two planes (Granite), or two projections (Jamba).
  const planes = planeLayout(L, [I, I]);
  const gu = op.layout === 'fused' ? scratch(`${label} [gate | up]`, planes.size) : undefined;
  const [gateOut, upOut] = gu ? [plane(gu, planes, 0), plane(gu, planes, 1)] : [{ buffer: scratch(`${label} gate_proj`, L * I) }, { buffer: scratch(`${label} up_proj`, L * I) }];
  const hidden = scratch(`${label} hidden`, L * I);
  const y = scratch(`${label} expert out`, L * H);
  const out = scratch(`${label} out`, L * H);
  const dispatches: Dispatch[] = [
    ...projectionDispatches(ctx, `${label} router`, { x, weight: w(op.routerKey), M: L, N: E, K: H, out: logits }),
    cache.dispatch(`${label} routing`, routingKernel(op), cache.flatWorkgroups(L, ELEMENTWISE_THREADS), { Logits: { buffer: logits }, Experts: { buffer: experts }, Weights: { buffer: weights }, Gate: { buffer: gate } }, { rows: L }),
  ];
  for (let e = 0; e < E; e++) {
    const at = `${label} expert ${e}`;
    if (gu) {
      dispatches.push(...projectionDispatches(ctx, `${at} input_linear`, { x, weight: w(fusedExpertKey(op, e, 'gate_up')), M: L, N: 2 * I, K: H, out: gu, planes: [I, I] }));
    } else {
      dispatches.push(
        ...projectionDispatches(ctx, `${at} gate_proj`, { x, weight: w(`${op.key}experts.${e}.gate_proj.weight`), M: L, N: I, K: H, out: gateOut.buffer }),
        ...projectionDispatches(ctx, `${at} up_proj`, { x, weight: w(`${op.key}experts.${e}.up_proj.weight`), M: L, N: I, K: H, out: upOut.buffer }),
      );
    }
    const down = gu ? fusedExpertKey(op, e, 'down') : `${op.key}experts.${e}.down_proj.weight`;
    dispatches.push(
      activationDispatch(cache, at, L * I, 'silu', gateOut, upOut, 1, { buffer: hidden }),
      ...projectionDispatches(ctx, `${at} down`, { x: hidden, weight: w(down), M: L, N: H, K: I, out: y }),
      cache.dispatch(`${at} weighted`, accumulateKernel(E, e === 0), cache.flatWorkgroups(L * H, ELEMENTWISE_THREADS), { Gate: { buffer: gate }, Y: { buffer: y }, Out: { buffer: out } }, { rows: L, width: H, expert: e }),
    );
  }
  return { dispatches, out, experts: { range: whole(experts, L * k), shape: [L, k] }, weights: { range: whole(weights, L * k), shape: [L, k] } };
}
