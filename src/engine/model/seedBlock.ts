/**
 * The design note's simplified block (MambaBlockSpecific): in_proj D→2D with bias → [x_in, res];
 * x_proj D→2N+1 with bias ordered [B, C, dt]; dt_proj 1→D with bias + softplus; no conv, no
 * out_proj; out = (scan(x_in) + D·x_in) ⊙ silu(res).
 */
import type { SeedBlockConfig } from './config';
import type { Param, ParamReader, Precision } from './params';

export interface SeedBlockParams<P extends Precision> {
  readonly inProjW: Param<P>; // [2D, D]
  readonly inProjB: Param<P>;
  readonly xProjW: Param<P>; // [2N + 1, D]
  readonly xProjB: Param<P>;
  readonly dtProjW: Param<P>; // [D, 1]
  readonly dtProjB: Param<P>;
  readonly A_log: Param<P>; // [D, N]
  readonly D: Param<P>;
}

/** A block file has no config.json: its shapes are read off A_log [D, N]. */
export function seedConfigFromShapes(aLogShape: readonly number[]): SeedBlockConfig {
  return { arch: 'seed', dModel: aLogShape[0], dState: aLogShape[1] };
}

export async function loadSeedBlock<P extends Precision>(c: SeedBlockConfig, r: ParamReader<P>): Promise<SeedBlockParams<P>> {
  const D = c.dModel, N = c.dState;
  return {
    inProjW: await r.get('in_proj.weight', [2 * D, D]),
    inProjB: await r.get('in_proj.bias', [2 * D]),
    xProjW: await r.get('x_proj.weight', [2 * N + 1, D]),
    xProjB: await r.get('x_proj.bias', [2 * N + 1]),
    dtProjW: await r.get('dt_proj.weight', [D, 1]),
    dtProjB: await r.get('dt_proj.bias', [D]),
    A_log: await r.get('A_log', [D, N]),
    D: await r.get('D', [D]),
  };
}
