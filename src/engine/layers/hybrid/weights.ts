/**
 * The weights of a hybrid layer, by full checkpoint key: each operation lists its own
 * (layers/<op>/reference.ts), and a Mamba operation's are gathered into the mixer's weights.
 */
import type { Mamba1MixerWeights } from '../mamba1/reference';
import type { Mamba2MixerWeights } from '../mamba2/reference';
import type { F64 } from '../../reference/ops';
import type { Mamba1Op, Mamba2Op } from './config';

/** One weight: its key, its stored shape, and the shape it is used in when that differs (conv1d's [C, 1, K] → [C, K]). */
export interface WeightSpec {
  readonly key: string;
  readonly shape: readonly number[];
  readonly as?: readonly number[];
}

/** A layer's weights by key (every one its specs list, read and shape-checked at load). */
export type OpWeights = (key: string) => F64;

export function mamba1Weights(op: Mamba1Op, dModel: number): WeightSpec[] {
  const k = op.key, D = op.dInner, N = op.dState, R = op.dtRank;
  return [
    { key: `${k}in_proj.weight`, shape: [2 * D, dModel] },
    ...(op.projBias ? [{ key: `${k}in_proj.bias`, shape: [2 * D] }] : []),
    { key: `${k}conv1d.weight`, shape: [D, 1, op.dConv], as: [D, op.dConv] },
    ...(op.convBias ? [{ key: `${k}conv1d.bias`, shape: [D] }] : []),
    { key: `${k}x_proj.weight`, shape: [R + 2 * N, D] },
    { key: `${k}dt_proj.weight`, shape: [D, R] },
    { key: `${k}dt_proj.bias`, shape: [D] },
    { key: `${k}A_log`, shape: [D, N] },
    { key: `${k}D`, shape: [D] },
    { key: `${k}out_proj.weight`, shape: [dModel, D] },
    ...(op.projBias ? [{ key: `${k}out_proj.bias`, shape: [dModel] }] : []),
    ...(op.dtBcNormEps !== undefined ? [{ key: `${k}dt_layernorm.weight`, shape: [R] }, { key: `${k}b_layernorm.weight`, shape: [N] }, { key: `${k}c_layernorm.weight`, shape: [N] }] : []),
  ];
}

export function mamba1MixerWeights(op: Mamba1Op, w: OpWeights): Mamba1MixerWeights {
  const k = op.key;
  const learned = op.dtBcNormEps !== undefined;
  return {
    inProjW: w(`${k}in_proj.weight`), inProjB: op.projBias ? w(`${k}in_proj.bias`) : undefined,
    convW: w(`${k}conv1d.weight`), convB: op.convBias ? w(`${k}conv1d.bias`) : undefined,
    xProjW: w(`${k}x_proj.weight`), dtProjW: w(`${k}dt_proj.weight`), dtProjB: w(`${k}dt_proj.bias`),
    A_log: w(`${k}A_log`), D: w(`${k}D`),
    outProjW: w(`${k}out_proj.weight`), outProjB: op.projBias ? w(`${k}out_proj.bias`) : undefined,
    dtNorm: learned ? w(`${k}dt_layernorm.weight`) : undefined, bNorm: learned ? w(`${k}b_layernorm.weight`) : undefined, cNorm: learned ? w(`${k}c_layernorm.weight`) : undefined,
  };
}

export function mamba2Weights(op: Mamba2Op, dModel: number): WeightSpec[] {
  const k = op.key, Din = op.nHeads * op.headDim, convDim = Din + 2 * op.nGroups * op.dState, proj = Din + convDim + op.nHeads;
  return [
    { key: `${k}in_proj.weight`, shape: [proj, dModel] },
    ...(op.projBias ? [{ key: `${k}in_proj.bias`, shape: [proj] }] : []),
    { key: `${k}conv1d.weight`, shape: [convDim, 1, op.dConv], as: [convDim, op.dConv] },
    ...(op.convBias ? [{ key: `${k}conv1d.bias`, shape: [convDim] }] : []),
    { key: `${k}dt_bias`, shape: [op.nHeads] },
    { key: `${k}A_log`, shape: [op.nHeads] },
    { key: `${k}D`, shape: [op.nHeads] },
    ...(op.gatedNorm ? [{ key: `${k}norm.weight`, shape: [Din] }] : []),
    { key: `${k}out_proj.weight`, shape: [dModel, Din] },
    ...(op.outProjBias ? [{ key: `${k}out_proj.bias`, shape: [dModel] }] : []),
  ];
}

export function mamba2MixerWeights(op: Mamba2Op, w: OpWeights): Mamba2MixerWeights {
  const k = op.key;
  return {
    inProjW: w(`${k}in_proj.weight`), inProjB: op.projBias ? w(`${k}in_proj.bias`) : undefined,
    convW: w(`${k}conv1d.weight`), convB: op.convBias ? w(`${k}conv1d.bias`) : undefined,
    dtBias: w(`${k}dt_bias`), A_log: w(`${k}A_log`), D: w(`${k}D`),
    gatedNorm: op.gatedNorm ? w(`${k}norm.weight`) : undefined,
    outProjW: w(`${k}out_proj.weight`), outProjB: op.outProjBias ? w(`${k}out_proj.bias`) : undefined,
  };
}
