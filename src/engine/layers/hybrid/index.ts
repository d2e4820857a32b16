/**
 * The hybrid decoder layer kind: one kind for every layer of Jamba, Bamba, Granite 4.0-H,
 * Nemotron-H, Zamba2 and Falcon-H1, each layer bound to its own composition (config.ts) read from
 * its family's config.json (model/families/). Its parameters are what the composition lists, by
 * full checkpoint key. The float64 reference, tfjs and the native WebGPU engine run it.
 */
import type { Precision } from '../../model/params';
import type { F64 } from '../../reference/ops';
import { attentionWeights } from '../attention/reference';
import type { InternalShapes, LayerKind, ParamSpec, ScanView } from '../kind';
import { mlpWeights } from '../mlp/reference';
import { moeWeights } from '../moe/reference';
import { layerLabel, layerOps, mambaOp, type HybridLayerConfig, type Op } from './config';
import { hybridReference } from './reference';
import { hybridTfjs, type HybridTfWeights } from './tfjs';
import { hybridWebGpu, type HybridGpuWeights } from './webgpu';
import { mamba1Weights, mamba2Weights, type WeightSpec } from './weights';

function opWeights(op: Op, dModel: number): WeightSpec[] {
  switch (op.kind) {
    case 'mamba1': return mamba1Weights(op, dModel);
    case 'mamba2': return mamba2Weights(op, dModel);
    case 'attention': return attentionWeights(op, dModel);
    case 'mlp': return mlpWeights(op, dModel);
    case 'moe': return moeWeights(op, dModel);
  }
}

type HybridParams = Readonly<Record<string, ParamSpec<HybridLayerConfig>>>;

/** Every weight of the layer, each key once (Zamba2's shared block is read by every layer that uses it). */
function params(c: HybridLayerConfig): HybridParams {
  const specs: WeightSpec[] = c.branches.flatMap((b) => [
    ...(b.shared ? [{ key: b.shared.inputNorm.key, shape: [2 * c.dModel] }, { key: b.shared.ffNorm.key, shape: [c.dModel] }, { key: b.shared.linearKey, shape: [c.dModel, c.dModel] }] : []),
    { key: b.norm.key, shape: [c.dModel] },
  ]);
  for (const op of layerOps(c)) specs.push(...opWeights(op, c.dModel));
  return Object.fromEntries(specs.map((s) => [s.key, { key: s.key, shape: () => s.shape, ...(s.as ? { as: () => s.as! } : {}) }]));
}

function internals(c: HybridLayerConfig): InternalShapes {
  const H = c.dModel;
  const ops = layerOps(c);
  const shapes: Record<string, readonly number[]> = { hidden_in: [H], out: [H], hidden_out: [H] };
  const m = mambaOp(c);
  if (m?.kind === 'mamba1') Object.assign(shapes, { z: [m.dInner], u: [m.dInner], delta: [m.dInner], B: [m.dState], C: [m.dState], y: [m.dInner], h: [m.dInner, m.dState], conv_state: [m.dConv - 1, m.dInner], ssm_out: [H] });
  if (m?.kind === 'mamba2') {
    const Din = m.nHeads * m.headDim, GN = m.nGroups * m.dState;
    Object.assign(shapes, { z: [Din], u: [Din], delta: [m.nHeads], B: [GN], C: [GN], y: [Din], h: [m.nHeads, m.headDim, m.dState], conv_state: [m.dConv - 1, Din + 2 * GN], ssm_out: [H] });
  }
  if (ops.some((op) => op.kind === 'attention')) shapes.attn_out = [H];
  if (c.branches.some((b) => b.ops.every((op) => op.kind === 'mlp' || op.kind === 'moe'))) shapes.mlp_out = [H];
  const moe = ops.find((op) => op.kind === 'moe');
  if (moe?.kind === 'moe') Object.assign(shapes, { moe_experts: [moe.topK], moe_weights: [moe.topK] });
  return shapes;
}

function scanView<P extends Precision>(c: HybridLayerConfig, p: Readonly<Record<string, { shape: readonly number[]; data: P extends 'float64' ? Float64Array : Float32Array }>>): ScanView<P> | undefined {
  const m = mambaOp(c);
  if (!m) return undefined;
  const aLog = p[`${m.key}A_log`], D = p[`${m.key}D`];
  if (m.kind === 'mamba1') return { aLog, D, groups: 1, channels: m.dInner, deltaWidth: m.dInner, deltaUnit: 'channels', stateWidth: m.dState };
  return { aLog, D, groups: m.nGroups, channels: m.nHeads * m.headDim, deltaWidth: m.nHeads, deltaUnit: 'heads', stateWidth: m.nGroups * m.dState };
}

export const hybridLayer: LayerKind<HybridLayerConfig, HybridParams, HybridTfWeights, HybridGpuWeights> = {
  id: 'hybrid',
  label: 'hybrid decoder layer',
  describe: layerLabel,
  accepts: (config): config is HybridLayerConfig => config.arch === 'hybrid-layer',
  params,
  internals,
  scanView: (c, p) => scanView(c, p as never),
  reference: (c, p, x, at, carry, edit, run) => hybridReference(c, p as Readonly<Record<string, F64>>, x, at, carry, edit, run),
  tfjs: hybridTfjs,
  webgpu: hybridWebGpu,
};
