/** The Mamba-2 mixer and layer on TensorFlow.js: the same computation as reference.ts, which it is tested against. */
import * as tf from '@tensorflow/tfjs-core';
import type { LayerEdit } from '../../interventions';
import type { Mamba2Config } from '../../model/config';
import { causalConvSilu, cols, convWindows, linear, rmsNorm, scaledDelta, silu, softplus, type TfConv, type TfUploader, type W } from '../../tfjs/ops';
import type { LayerStep, TfjsEntry, TfRun } from '../kind';
import type { TfMixerStep } from '../mamba1/tfjs';
import type { MAMBA2_PARAMS, Mamba2LayerParams } from './params';
import { mamba2Shape, type Mamba2MixerShape } from './reference';

/** The mixer's weights on the backend (a hybrid's Mamba-2 operation has the same; gatedNorm absent without a norm). */
export interface Mamba2TfMixer extends TfConv {
  readonly inProjW: W;
  readonly inProjB?: W;
  readonly dtBias: W;
  /** −exp(A_log) per head, computed once. */
  readonly A: W;
  readonly D: W;
  readonly gatedNorm?: W;
  readonly outProjW: W;
  readonly outProjB?: W;
}

export interface Mamba2Weights extends Mamba2TfMixer {
  readonly [name: string]: W | undefined;
  readonly norm: W;
}

function upload(_c: Mamba2Config, l: Mamba2LayerParams<'float32'>, up: TfUploader): Mamba2Weights {
  return {
    norm: up.tensor(l.norm), inProjW: up.projection(l.inProjW), inProjB: up.optional(l.inProjB), ...up.conv(l.convW, l.convB),
    dtBias: up.tensor(l.dtBias), A: up.negExp(l.A_log), D: up.tensor(l.D), gatedNorm: up.tensor(l.gatedNorm),
    outProjW: up.projection(l.outProjW), outProjB: up.optional(l.outProjB),
  };
}

/** in_proj's output with each segment [z | x | B | C | dt] multiplied by its scale (Falcon-H1's µP vector). */
function scaleSegments(proj: W, s: Mamba2MixerShape): W {
  const scales = s.segmentScales;
  if (!scales || scales.every((v) => v === 1)) return proj;
  const Din = s.nHeads * s.headDim, GN = s.nGroups * s.dState;
  const widths = [Din, Din, GN, GN, s.nHeads];
  const column = tf.concat(widths.map((n, i) => tf.fill([n], scales[i])));
  const scaled = tf.mul(proj, column);
  column.dispose();
  proj.dispose();
  return scaled;
}

/** The mixer on its input (the normed stream); `edit`: on Δ and in the scan. */
export function mamba2TfMixer(s: Mamba2MixerShape, w: Mamba2TfMixer, x: W, { layout, kernels, at }: TfRun, edit?: LayerEdit): TfMixerStep {
  const Din = s.nHeads * s.headDim, GN = s.nGroups * s.dState, convDim = Din + 2 * GN;
  const proj = scaleSegments(linear(x, w.inProjW, layout, w.inProjB), s);
  const z = cols(proj, 0, Din);
  const xBCin = cols(proj, Din, convDim);
  const xBC = causalConvSilu(xBCin, w, kernels, edit?.patch);
  // With the states, the conv's context (x | B | C before the conv) at the same positions: what a patch-state from this run reads.
  const convState = at.length ? { conv_state: convWindows(xBCin, s.dConv, at, edit?.patch) } : {};
  const u = cols(xBC, 0, Din);
  const B = cols(xBC, Din, GN);
  const C = cols(xBC, Din + GN, GN);
  const [lo, hi] = s.dtLimit;
  const delta = scaledDelta(tf.clipByValue(softplus(tf.add(cols(proj, Din + convDim, s.nHeads), w.dtBias)), lo, Number.isFinite(hi) ? hi : 3.4e38), edit);
  const scan = kernels.headScan({ x: u as tf.Tensor2D, delta: delta as tf.Tensor2D, A: w.A as tf.Tensor1D, B: B as tf.Tensor2D, C: C as tf.Tensor2D, D: w.D as tf.Tensor1D, groups: s.nGroups, statesAt: at, edit: edit?.scan, patch: edit?.patch });
  const n = s.gatedNorm;
  const gated = !n ? tf.mul(scan.y, silu(z)) : n.beforeGate ? tf.mul(rmsNorm(scan.y, w.gatedNorm, n.eps, Din / n.groupSize), silu(z)) : rmsNorm(tf.mul(scan.y, silu(z)), w.gatedNorm, n.eps, Din / n.groupSize);
  const out = linear(gated, w.outProjW, layout, w.outProjB);
  return { out, internals: { z, u, delta, B, C, y: scan.y, ...(scan.h ? { h: scan.h } : {}), ...convState } };
}

function forward(c: Mamba2Config, w: Mamba2Weights, hidden: W, run: TfRun, edit?: LayerEdit): LayerStep<W> {
  const step = mamba2TfMixer(mamba2Shape(c), w, rmsNorm(hidden, w.norm, c.eps), run, edit);
  const hiddenOut = tf.add(hidden, step.out);
  return { next: hiddenOut, internals: { hidden_in: hidden, ...step.internals, out: step.out, hidden_out: hiddenOut } };
}

export const mamba2Tfjs: TfjsEntry<Mamba2Config, typeof MAMBA2_PARAMS, Mamba2Weights> = {
  upload,
  projections: ['inProjW', 'outProjW'],
  forward,
};
