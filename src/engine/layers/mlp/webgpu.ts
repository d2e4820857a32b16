/**
 * The families' MLPs on WebGPU, in the order of the float64 reference (./reference.ts, the
 * oracle): the gate and up projections (one fused projection written as two planes [gate | up],
 * + Zamba2's adapter), act(gate) ⊙ up, the down projection (+ Falcon-H1's down multiplier).
 */
import type { MlpOp } from '../hybrid/config';
import { adaptedProjection, type GpuOpWeights } from '../attention/webgpu';
import { activationDispatch, combineDispatch } from '../../webgpu/elementwise';
import type { Dispatch } from '../../webgpu/kernel';
import { plane, projectionDispatches, type LayerContext, type LayerScratch } from '../../webgpu/layer';
import { planeLayout } from '../../webgpu/planes';

export function mlpGpu(op: MlpOp, w: GpuOpWeights, x: GPUBuffer, H: number, label: string, ctx: LayerContext, scratch: LayerScratch): { dispatches: Dispatch[]; out: GPUBuffer } {
  const { L } = ctx;
  const I = op.intermediate;
  const hidden = scratch(`${label} hidden`, L * I);
  const out = scratch(`${label} down`, L * H);
  const dispatches: Dispatch[] = [];
  let downKey: string;
  if (op.layout === 'ungated') {
    const up = scratch(`${label} up`, L * I);
    dispatches.push(...projectionDispatches(ctx, `${label} up_proj`, { x, weight: w(`${op.key}up_proj.weight`), M: L, N: I, K: H, out: up }), activationDispatch(ctx.cache, label, L * I, op.act, { buffer: up }, undefined, 1, { buffer: hidden }));
    downKey = `${op.key}down_proj.weight`;
  } else if (op.layout === 'separate') {
    const [gate, up] = [scratch(`${label} gate`, L * I), scratch(`${label} up`, L * I)];
    dispatches.push(
      ...projectionDispatches(ctx, `${label} gate_proj`, { x, weight: w(`${op.key}gate_proj.weight`), M: L, N: I, K: H, out: gate }),
      ...projectionDispatches(ctx, `${label} up_proj`, { x, weight: w(`${op.key}up_proj.weight`), M: L, N: I, K: H, out: up }),
      activationDispatch(ctx.cache, label, L * I, op.act, { buffer: gate }, { buffer: up }, op.gateScale, { buffer: hidden }),
    );
    downKey = `${op.key}down_proj.weight`;
  } else {
    // One projection holding [gate; up], written as two planes of one buffer.
    const [input, output] = op.fusedNames ?? ['input_linear', 'output_linear'];
    const planes = planeLayout(L, [I, I]);
    const gu = scratch(`${label} [gate | up]`, planes.size);
    dispatches.push(
      ...adaptedProjection(ctx, scratch, `${label} ${input}`, w, x, H, `${op.key}${input}.weight`, `${op.key}${input}_adapter_list.`, op.adapter, 2 * I, gu, [I, I]),
      activationDispatch(ctx.cache, label, L * I, op.act, plane(gu, planes, 0), plane(gu, planes, 1), op.gateScale, { buffer: hidden }),
    );
    downKey = `${op.key}${output}.weight`;
  }
  dispatches.push(...projectionDispatches(ctx, `${label} down_proj`, { x: hidden, weight: w(downKey), M: L, N: H, K: I, out }));
  if (op.downScale === 1) return { dispatches, out };
  const scaled = scratch(`${label} down scaled`, L * H);
  dispatches.push(combineDispatch(ctx.cache, `${label} down multiplier`, L * H, { buffer: out }, op.downScale, { buffer: scaled }));
  return { dispatches, out: scaled };
}
