/**
 * Mamba-1 (transformers MambaForCausalLM, mamba_ssm Mamba) layer parameters, under their
 * checkpoint names after `layers.i.`. Per layer: RMSNorm → in_proj → [x, z] → causal depthwise
 * conv1d + SiLU → u → x_proj → [dt, B, C] → dt_proj + softplus → scan → y ⊙ silu(z) → out_proj → residual.
 */
import type { Mamba1Config } from '../../model/config';
import type { Precision } from '../../model/params';
import type { ParamSpecs, ParamsOf } from '../kind';

export const MAMBA1_PARAMS = {
  norm: { key: 'norm.weight', shape: (c) => [c.dModel] },
  /** [2D, H]: rows 0..D-1 make x, D..2D-1 make z. */
  inProjW: { key: 'mixer.in_proj.weight', shape: (c) => [2 * c.dInner, c.dModel] },
  inProjB: { key: 'mixer.in_proj.bias', shape: (c) => [2 * c.dInner], when: (c) => c.projBias },
  convW: { key: 'mixer.conv1d.weight', shape: (c) => [c.dInner, 1, c.dConv], as: (c) => [c.dInner, c.dConv] },
  convB: { key: 'mixer.conv1d.bias', shape: (c) => [c.dInner], when: (c) => c.convBias },
  /** [R + 2N, D]: dt, B, C. */
  xProjW: { key: 'mixer.x_proj.weight', shape: (c) => [c.dtRank + 2 * c.dState, c.dInner] },
  dtProjW: { key: 'mixer.dt_proj.weight', shape: (c) => [c.dInner, c.dtRank] },
  dtProjB: { key: 'mixer.dt_proj.bias', shape: (c) => [c.dInner] },
  A_log: { key: 'mixer.A_log', shape: (c) => [c.dInner, c.dState] },
  D: { key: 'mixer.D', shape: (c) => [c.dInner] },
  outProjW: { key: 'mixer.out_proj.weight', shape: (c) => [c.dModel, c.dInner] },
  outProjB: { key: 'mixer.out_proj.bias', shape: (c) => [c.dModel], when: (c) => c.projBias },
} as const satisfies ParamSpecs<Mamba1Config>;

export type Mamba1LayerParams<P extends Precision> = ParamsOf<typeof MAMBA1_PARAMS, P>;
