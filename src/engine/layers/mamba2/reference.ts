/**
 * The float64 Mamba-2 mixer and layer: a transcription of transformers' Mamba2Mixer.torch_forward,
 * the oracle of the other engines. The mixer alone (on the normed stream) is also a hybrid
 * model's Mamba-2 operation (Bamba, Granite, Nemotron-H, Zamba2, Falcon-H1), with the variants of
 * the gated norm and the µP multipliers those families add.
 */
import type { Mamba2Config } from '../../model/config';
import { add, causalConvSilu, columns, convWindow, convWindows, gate, linear, rmsNorm, softplus, type F64 } from '../../reference/ops';
import { negExp, selectiveScanHeads } from '../../reference/scan';
import type { InternalName } from '../../internals';
import type { LayerCarry, ReferenceStep } from '../kind';
import { scaledDelta, type LayerEdit } from '../../interventions';
import type { Mamba2LayerParams } from './params';

/** The gated RMSNorm before out_proj: over groups of `groupSize` channels, on y ⊙ silu(z), or on y with the gate after (`beforeGate`). */
export interface GatedNormSpec {
  readonly eps: number;
  readonly groupSize: number;
  readonly beforeGate: boolean;
}

/** What the mixer's forward needs of its config: the Mamba-2 kind's and a hybrid's Mamba2Op both give it. */
export interface Mamba2MixerShape {
  readonly nHeads: number;
  readonly headDim: number;
  readonly dState: number;
  readonly nGroups: number;
  readonly dConv: number;
  /** Δ is clamped to this range after softplus. */
  readonly dtLimit: readonly [number, number];
  /** None: the output is y ⊙ silu(z) (Falcon-H1 with mamba_rms_norm false). */
  readonly gatedNorm?: GatedNormSpec;
  /** Falcon-H1's µP multipliers on in_proj's output segments z, x, B, C, dt. */
  readonly segmentScales?: readonly [number, number, number, number, number];
}

export interface Mamba2MixerWeights {
  readonly inProjW: F64;
  readonly inProjB?: F64;
  readonly convW: F64;
  readonly convB?: F64;
  readonly dtBias: F64;
  readonly A_log: F64;
  readonly D: F64;
  readonly gatedNorm?: F64;
  readonly outProjW: F64;
  readonly outProjB?: F64;
}

export interface MixerStep {
  readonly out: F64;
  readonly internals: Partial<Record<InternalName, F64>>;
  readonly carry: LayerCarry;
}

/** in_proj's output with each segment [z | x | B | C | dt] multiplied by its scale. */
function scaleSegments(proj: F64, s: Mamba2MixerShape): F64 {
  const scales = s.segmentScales;
  if (!scales || scales.every((v) => v === 1)) return proj;
  const Din = s.nHeads * s.headDim, GN = s.nGroups * s.dState;
  const ends = [Din, 2 * Din, 2 * Din + GN, 2 * Din + 2 * GN, 2 * Din + 2 * GN + s.nHeads];
  const width = proj.shape[1];
  const column = new Float64Array(width);
  for (let j = 0, seg = 0; j < width; j++) {
    while (j >= ends[seg]) seg++;
    column[j] = scales[seg];
  }
  return { shape: proj.shape, data: proj.data.map((v, i) => v * column[i % width]) };
}

/** The mixer on its input (the normed stream): its output before the residual, its internals, and the carry. */
export function mamba2Mixer(s: Mamba2MixerShape, w: Mamba2MixerWeights, x: F64, at: Int32Array, carry?: LayerCarry, edit?: LayerEdit): MixerStep {
  const Din = s.nHeads * s.headDim, GN = s.nGroups * s.dState, convDim = Din + 2 * GN;
  const [lo, hi] = s.dtLimit;
  const proj = scaleSegments(linear(x, w.inProjW, w.inProjB), s);
  const z = columns(proj, 0, Din);
  const xBCin = columns(proj, Din, convDim);
  const xBC = causalConvSilu(xBCin, w.convW, w.convB, carry?.conv, edit?.patch);
  const u = columns(xBC, 0, Din);
  const B = columns(xBC, Din, GN);
  const C = columns(xBC, Din + GN, GN);
  const dtRaw = columns(proj, Din + convDim, s.nHeads);
  const delta = scaledDelta({
    shape: dtRaw.shape,
    data: dtRaw.data.map((v, j) => Math.min(hi, Math.max(lo, softplus(v + w.dtBias.data[j % s.nHeads])))),
  }, edit);
  const { y, h, last } = selectiveScanHeads(u, delta, negExp(w.A_log), B, C, w.D, s.nGroups, at, carry?.h, edit?.scan, edit?.patch);
  const n = s.gatedNorm;
  const gated = !n ? gate(y, z) : n.beforeGate ? gate(rmsNorm(y, w.gatedNorm, n.eps, n.groupSize), z) : rmsNorm(gate(y, z), w.gatedNorm, n.eps, n.groupSize);
  const out = linear(gated, w.outProjW, w.outProjB);
  // With the states, the conv's context (x | B | C before the conv) at the same positions: what a patch-state from this run needs.
  const convState = at.length ? { conv_state: convWindows(xBCin, s.dConv, at, carry?.conv, edit?.patch) } : {};
  return { out, internals: { z, u, delta, B, C, y, h, ...convState }, carry: { h: last, conv: convWindow(xBCin, s.dConv, xBCin.shape[0] - 1, carry?.conv, edit?.patch) } };
}

/** The Mamba-2 kind's mixer shape: transformers' Mamba2 gates, then normalizes per config.normGroupSize. */
export function mamba2Shape(c: Mamba2Config): Mamba2MixerShape {
  return { ...c, dtLimit: c.timeStepLimit, gatedNorm: { eps: c.eps, groupSize: c.normGroupSize, beforeGate: false } };
}

export function mamba2Reference(c: Mamba2Config, p: Mamba2LayerParams<'float64'>, hidden: F64, at: Int32Array, carry?: LayerCarry, edit?: LayerEdit): ReferenceStep {
  const step = mamba2Mixer(mamba2Shape(c), p, rmsNorm(hidden, p.norm, c.eps), at, carry, edit);
  const hiddenOut = add(hidden, step.out);
  return { next: hiddenOut, internals: { hidden_in: hidden, ...step.internals, out: step.out, hidden_out: hiddenOut }, carry: step.carry };
}
