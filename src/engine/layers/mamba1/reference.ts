/**
 * The float64 Mamba-1 layer: a transcription of transformers' MambaMixer.slow_forward (and
 * FalconMambaMixer's, with its weightless norms on dt, B and C), the oracle of the other engines.
 */
import type { Mamba1Config } from '../../model/config';
import { add, causalConvSilu, columns, convContext, gate, linear, map, rmsNorm, softplus, type F64 } from '../../reference/ops';
import { negExp, selectiveScan } from '../../reference/scan';
import type { LayerCarry, ReferenceStep } from '../kind';
import { scaledDelta, type LayerEdit } from '../../interventions';
import type { Mamba1LayerParams } from './params';

export function mamba1Reference(c: Mamba1Config, p: Mamba1LayerParams<'float64'>, hidden: F64, at: Int32Array, carry?: LayerCarry, edit?: LayerEdit): ReferenceStep {
  const D = c.dInner, N = c.dState, R = c.dtRank;
  const proj = linear(rmsNorm(hidden, p.norm, c.eps), p.inProjW, p.inProjB);
  const z = columns(proj, D, D);
  const x = columns(proj, 0, D);
  const u = causalConvSilu(x, p.convW, p.convB, carry?.conv);
  const xdbl = linear(u, p.xProjW);
  const norm = (t: F64) => (c.dtBcNormEps === undefined ? t : rmsNorm(t, undefined, c.dtBcNormEps));
  const B = norm(columns(xdbl, R, N));
  const C = norm(columns(xdbl, R + N, N));
  const delta = scaledDelta(map(linear(norm(columns(xdbl, 0, R)), p.dtProjW, p.dtProjB), softplus), edit);
  const { y, h, last } = selectiveScan(u, delta, negExp(p.A_log), B, C, p.D, at, carry?.h, edit?.scan);
  const out = linear(gate(y, z), p.outProjW, p.outProjB);
  const hiddenOut = add(hidden, out);
  return { next: hiddenOut, internals: { hidden_in: hidden, z, u, delta, B, C, y, out, hidden_out: hiddenOut, h }, carry: { h: last, conv: convContext(x, c.dConv, carry?.conv) } };
}
