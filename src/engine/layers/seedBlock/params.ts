/**
 * The design note's simplified block (MambaBlockSpecific): in_proj D→2D with bias → [x_in, res];
 * x_proj D→2N+1 with bias ordered [B, C, dt]; dt_proj 1→D with bias + softplus; no conv, no
 * out_proj; out = (scan(x_in) + D·x_in) ⊙ silu(res). A block file holds these keys unprefixed.
 */
import type { SeedBlockConfig } from '../../model/config';
import type { Precision } from '../../model/params';
import type { ParamSpecs, ParamsOf } from '../kind';

export const SEED_BLOCK_PARAMS = {
  inProjW: { key: 'in_proj.weight', shape: (c) => [2 * c.dModel, c.dModel] },
  inProjB: { key: 'in_proj.bias', shape: (c) => [2 * c.dModel] },
  xProjW: { key: 'x_proj.weight', shape: (c) => [2 * c.dState + 1, c.dModel] },
  xProjB: { key: 'x_proj.bias', shape: (c) => [2 * c.dState + 1] },
  dtProjW: { key: 'dt_proj.weight', shape: (c) => [c.dModel, 1] },
  dtProjB: { key: 'dt_proj.bias', shape: (c) => [c.dModel] },
  A_log: { key: 'A_log', shape: (c) => [c.dModel, c.dState] },
  D: { key: 'D', shape: (c) => [c.dModel] },
} as const satisfies ParamSpecs<SeedBlockConfig>;

export type SeedBlockParams<P extends Precision> = ParamsOf<typeof SEED_BLOCK_PARAMS, P>;

/** A block file has no config.json: its shapes are read off A_log [D, N]. */
export function seedConfigFromShapes(aLogShape: readonly number[]): SeedBlockConfig {
  return { arch: 'seed', dModel: aLogShape[0], dState: aLogShape[1] };
}
