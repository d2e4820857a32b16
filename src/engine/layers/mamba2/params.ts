/**
 * Mamba-2 (transformers Mamba2ForCausalLM, mamba_ssm Mamba2) layer parameters, under their
 * checkpoint names after `layers.i.`. in_proj's output is [z (D_in), xBC (D_in + 2·G·N), dt (heads)];
 * the causal conv runs over xBC; A_log, D and dt_bias are per head; a gated RMSNorm
 * (norm(y ⊙ silu(z)), per group) precedes out_proj.
 */
import type { Mamba2Config } from '../../model/config';
import type { Precision } from '../../model/params';
import type { ParamSpecs, ParamsOf } from '../kind';

/** Width of xBC, the conv's input: u, B and C. */
export function mamba2ConvDim(c: Mamba2Config): number {
  return c.dInner + 2 * c.nGroups * c.dState;
}

function inProjOut(c: Mamba2Config): number {
  return c.dInner + mamba2ConvDim(c) + c.nHeads;
}

export const MAMBA2_PARAMS = {
  norm: { key: 'norm.weight', shape: (c) => [c.dModel] },
  inProjW: { key: 'mixer.in_proj.weight', shape: (c) => [inProjOut(c), c.dModel] },
  inProjB: { key: 'mixer.in_proj.bias', shape: (c) => [inProjOut(c)], when: (c) => c.projBias },
  convW: { key: 'mixer.conv1d.weight', shape: (c) => [mamba2ConvDim(c), 1, c.dConv], as: (c) => [mamba2ConvDim(c), c.dConv] },
  convB: { key: 'mixer.conv1d.bias', shape: (c) => [mamba2ConvDim(c)], when: (c) => c.convBias },
  dtBias: { key: 'mixer.dt_bias', shape: (c) => [c.nHeads] },
  A_log: { key: 'mixer.A_log', shape: (c) => [c.nHeads] },
  D: { key: 'mixer.D', shape: (c) => [c.nHeads] },
  gatedNorm: { key: 'mixer.norm.weight', shape: (c) => [c.dInner] },
  outProjW: { key: 'mixer.out_proj.weight', shape: (c) => [c.dModel, c.dInner] },
  outProjB: { key: 'mixer.out_proj.bias', shape: (c) => [c.dModel], when: (c) => c.projBias },
} as const satisfies ParamSpecs<Mamba2Config>;

export type Mamba2LayerParams<P extends Precision> = ParamsOf<typeof MAMBA2_PARAMS, P>;
