/** The float64 simplified block, as the design note's PyTorch module computes it: the oracle of the tfjs block. */
import type { SeedBlockConfig } from '../../model/config';
import { columns, gate, linear, map, softplus, type F64 } from '../../reference/ops';
import { negExp, selectiveScan } from '../../reference/scan';
import type { LayerCarry, ReferenceStep } from '../kind';
import { scaledDelta, type LayerEdit } from '../../interventions';
import type { SeedBlockParams } from './params';

export function seedBlockReference(c: SeedBlockConfig, p: SeedBlockParams<'float64'>, x: F64, at: Int32Array, carry?: LayerCarry, edit?: LayerEdit): ReferenceStep {
  const D = c.dModel, N = c.dState;
  const proj = linear(x, p.inProjW, p.inProjB);
  const xIn = columns(proj, 0, D);
  const res = columns(proj, D, D);
  const params = linear(xIn, p.xProjW, p.xProjB);
  const B = columns(params, 0, N);
  const C = columns(params, N, N);
  const delta = scaledDelta(map(linear(columns(params, 2 * N, 1), p.dtProjW, p.dtProjB), softplus), edit);
  const { y, h, last } = selectiveScan(xIn, delta, negExp(p.A_log), B, C, p.D, at, carry?.h, edit?.scan, edit?.patch);
  const out = gate(y, res);
  return { next: out, internals: { u: xIn, z: res, B, C, delta, y, out, h }, carry: { h: last } };
}
