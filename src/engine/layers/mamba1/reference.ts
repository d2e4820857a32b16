/**
 * The float64 Mamba-1 mixer and layer: a transcription of transformers' MambaMixer.slow_forward
 * (FalconMambaMixer's, with its weightless norms on dt, B and C; JambaMambaMixer's, with learned
 * ones), the oracle of the other engines. The mixer alone is also Jamba's Mamba operation.
 */
import type { Mamba1Config } from '../../model/config';
import { add, causalConvSilu, columns, convWindow, convWindows, gate, linear, map, rmsNorm, softplus, type F64 } from '../../reference/ops';
import { negExp, selectiveScan } from '../../reference/scan';
import type { LayerCarry, ReferenceStep } from '../kind';
import { scaledDelta, type LayerEdit } from '../../interventions';
import type { MixerStep } from '../mamba2/reference';
import type { Mamba1LayerParams } from './params';

/** What the mixer's forward needs of its config: the Mamba-1 kind's and Jamba's Mamba1Op both give it. */
export interface Mamba1MixerShape {
  readonly dInner: number;
  readonly dState: number;
  readonly dConv: number;
  readonly dtRank: number;
  /** An RMSNorm with this eps on the low-rank dt, on B and on C after x_proj (weighted by dtNorm, bNorm, cNorm when given). */
  readonly dtBcNormEps?: number;
}

export interface Mamba1MixerWeights {
  readonly inProjW: F64;
  readonly inProjB?: F64;
  readonly convW: F64;
  readonly convB?: F64;
  readonly xProjW: F64;
  readonly dtProjW: F64;
  readonly dtProjB: F64;
  readonly A_log: F64;
  readonly D: F64;
  readonly outProjW: F64;
  readonly outProjB?: F64;
  readonly dtNorm?: F64;
  readonly bNorm?: F64;
  readonly cNorm?: F64;
}

export function mamba1Mixer(s: Mamba1MixerShape, w: Mamba1MixerWeights, x: F64, at: Int32Array, carry?: LayerCarry, edit?: LayerEdit): MixerStep {
  const D = s.dInner, N = s.dState, R = s.dtRank;
  const proj = linear(x, w.inProjW, w.inProjB);
  const z = columns(proj, D, D);
  const xIn = columns(proj, 0, D);
  const u = causalConvSilu(xIn, w.convW, w.convB, carry?.conv, edit?.patch);
  const xdbl = linear(u, w.xProjW);
  const norm = (t: F64, weight?: F64) => (s.dtBcNormEps === undefined ? t : rmsNorm(t, weight, s.dtBcNormEps));
  const B = norm(columns(xdbl, R, N), w.bNorm);
  const C = norm(columns(xdbl, R + N, N), w.cNorm);
  const delta = scaledDelta(map(linear(norm(columns(xdbl, 0, R), w.dtNorm), w.dtProjW, w.dtProjB), softplus), edit);
  const { y, h, last } = selectiveScan(u, delta, negExp(w.A_log), B, C, w.D, at, carry?.h, edit?.scan, edit?.patch);
  const out = linear(gate(y, z), w.outProjW, w.outProjB);
  // With the states, the conv's context at the same positions: what a patch-state from this run needs.
  const convState = at.length ? { conv_state: convWindows(xIn, s.dConv, at, carry?.conv, edit?.patch) } : {};
  return { out, internals: { z, u, delta, B, C, y, h, ...convState }, carry: { h: last, conv: convWindow(xIn, s.dConv, xIn.shape[0] - 1, carry?.conv, edit?.patch) } };
}

export function mamba1Reference(c: Mamba1Config, p: Mamba1LayerParams<'float64'>, hidden: F64, at: Int32Array, carry?: LayerCarry, edit?: LayerEdit): ReferenceStep {
  const step = mamba1Mixer(c, p, rmsNorm(hidden, p.norm, c.eps), at, carry, edit);
  const hiddenOut = add(hidden, step.out);
  return { next: hiddenOut, internals: { hidden_in: hidden, ...step.internals, out: step.out, hidden_out: hiddenOut }, carry: step.carry };
}
