/** The float64 Mamba-2 layer: a transcription of transformers' Mamba2Mixer.torch_forward, the oracle of the other engines. */
import type { Mamba2Config } from '../../model/config';
import { add, causalConvSilu, columns, convContext, gate, linear, rmsNorm, softplus, type F64 } from '../../reference/ops';
import { negExp, selectiveScanHeads } from '../../reference/scan';
import type { LayerCarry, ReferenceStep } from '../kind';
import { scaledDelta, type LayerEdit } from '../../interventions';
import { mamba2ConvDim, type Mamba2LayerParams } from './params';

export function mamba2Reference(c: Mamba2Config, p: Mamba2LayerParams<'float64'>, hidden: F64, at: Int32Array, carry?: LayerCarry, edit?: LayerEdit): ReferenceStep {
  const Din = c.dInner, GN = c.nGroups * c.dState, convDim = mamba2ConvDim(c);
  const [lo, hi] = c.timeStepLimit;
  const proj = linear(rmsNorm(hidden, p.norm, c.eps), p.inProjW, p.inProjB);
  const z = columns(proj, 0, Din);
  const xBCin = columns(proj, Din, convDim);
  const xBC = causalConvSilu(xBCin, p.convW, p.convB, carry?.conv);
  const u = columns(xBC, 0, Din);
  const B = columns(xBC, Din, GN);
  const C = columns(xBC, Din + GN, GN);
  const dtRaw = columns(proj, Din + convDim, c.nHeads);
  const delta = scaledDelta({
    shape: dtRaw.shape,
    data: dtRaw.data.map((v, j) => Math.min(hi, Math.max(lo, softplus(v + p.dtBias.data[j % c.nHeads])))),
  }, edit);
  const { y, h, last } = selectiveScanHeads(u, delta, negExp(p.A_log), B, C, p.D, c.nGroups, at, carry?.h, edit?.scan);
  const normed = rmsNorm(gate(y, z), p.gatedNorm, c.eps, c.normGroupSize);
  const out = linear(normed, p.outProjW, p.outProjB);
  const hiddenOut = add(hidden, out);
  return { next: hiddenOut, internals: { hidden_in: hidden, z, u, delta, B, C, y, out, hidden_out: hiddenOut, h }, carry: { h: last, conv: convContext(xBCin, c.dConv, carry?.conv) } };
}
