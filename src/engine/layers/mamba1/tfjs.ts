/** The Mamba-1 mixer and layer on TensorFlow.js: the same computation as reference.ts, which it is tested against. */
import * as tf from '@tensorflow/tfjs-core';
import type { InternalName } from '../../internals';
import type { LayerEdit } from '../../interventions';
import type { Mamba1Config } from '../../model/config';
import { causalConvSilu, cols, convWindows, linear, rmsNorm, scaledDelta, softplus, type TfConv, type TfUploader, type W } from '../../tfjs/ops';
import type { LayerStep, TfjsEntry, TfRun } from '../kind';
import type { MAMBA1_PARAMS, Mamba1LayerParams } from './params';
import type { Mamba1MixerShape } from './reference';

/** The mixer's weights on the backend (a hybrid's Mamba-1 operation has the same, with its learned dt/B/C norms). */
export interface Mamba1TfMixer extends TfConv {
  readonly inProjW: W;
  readonly inProjB?: W;
  readonly xProjW: W;
  readonly dtProjW: W;
  readonly dtProjB: W;
  /** −exp(A_log), computed once. */
  readonly A: W;
  readonly D: W;
  readonly outProjW: W;
  readonly outProjB?: W;
  readonly dtNorm?: W;
  readonly bNorm?: W;
  readonly cNorm?: W;
}

export interface Mamba1Weights extends Mamba1TfMixer {
  readonly [name: string]: W | undefined;
  readonly norm: W;
}

function upload(_c: Mamba1Config, l: Mamba1LayerParams<'float32'>, up: TfUploader): Mamba1Weights {
  return {
    norm: up.tensor(l.norm), inProjW: up.projection(l.inProjW), inProjB: up.optional(l.inProjB), ...up.conv(l.convW, l.convB),
    xProjW: up.projection(l.xProjW), dtProjW: up.projection(l.dtProjW), dtProjB: up.tensor(l.dtProjB), A: up.negExp(l.A_log), D: up.tensor(l.D),
    outProjW: up.projection(l.outProjW), outProjB: up.optional(l.outProjB),
  };
}

/** The mixer's output on its input (the normed stream), and its internals. */
export interface TfMixerStep {
  readonly out: W;
  readonly internals: Partial<Record<InternalName, W>>;
}

/**
 * Disposes each [L, D] intermediate as soon as it is used (proj, x, the gated output), not at the
 * end of the walker's tidy: a smaller peak per layer, and less wasm heap for good. `edit`: on Δ and in the scan.
 */
export function mamba1TfMixer(s: Mamba1MixerShape, w: Mamba1TfMixer, x: W, { layout, kernels, at }: TfRun, edit?: LayerEdit): TfMixerStep {
  const Dd = s.dInner, N = s.dState, R = s.dtRank;
  const proj = linear(x, w.inProjW, layout, w.inProjB);
  const z = cols(proj, Dd, Dd);
  const xIn = cols(proj, 0, Dd);
  proj.dispose();
  const u = causalConvSilu(xIn, w, kernels, edit?.patch);
  // With the states, the conv's context at the same positions: what a patch-state from this run reads.
  const convState = at.length ? { conv_state: convWindows(xIn, s.dConv, at, edit?.patch) } : {};
  xIn.dispose();
  const xdbl = linear(u, w.xProjW, layout);
  const norm = (t: W, weight?: W) => (s.dtBcNormEps === undefined ? t : rmsNorm(t, weight, s.dtBcNormEps));
  const B = norm(cols(xdbl, R, N), w.bNorm);
  const C = norm(cols(xdbl, R + N, N), w.cNorm);
  const delta = scaledDelta(softplus(linear(norm(cols(xdbl, 0, R), w.dtNorm), w.dtProjW, layout, w.dtProjB)), edit);
  const scan = kernels.scan({ u: u as tf.Tensor2D, delta: delta as tf.Tensor2D, A: w.A as tf.Tensor2D, B: B as tf.Tensor2D, C: C as tf.Tensor2D, D: w.D as tf.Tensor1D, z: z as tf.Tensor2D, statesAt: at, edit: edit?.scan, patch: edit?.patch });
  const out = linear(scan.gated as W, w.outProjW, layout, w.outProjB);
  scan.gated?.dispose();
  return { out, internals: { z, u, delta, B, C, y: scan.y, ...(scan.h ? { h: scan.h } : {}), ...convState } };
}

function forward(c: Mamba1Config, w: Mamba1Weights, hidden: W, run: TfRun, edit?: LayerEdit): LayerStep<W> {
  const step = mamba1TfMixer(c, w, rmsNorm(hidden, w.norm, c.eps), run, edit);
  const hiddenOut = tf.add(hidden, step.out);
  return { next: hiddenOut, internals: { hidden_in: hidden, ...step.internals, out: step.out, hidden_out: hiddenOut } };
}

export const mamba1Tfjs: TfjsEntry<Mamba1Config, typeof MAMBA1_PARAMS, Mamba1Weights> = {
  upload,
  projections: ['inProjW', 'xProjW', 'dtProjW', 'outProjW'],
  forward,
};
