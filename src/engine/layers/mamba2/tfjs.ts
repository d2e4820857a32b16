/** The Mamba-2 layer on TensorFlow.js: the same computation as reference.ts, which it is tested against. */
import * as tf from '@tensorflow/tfjs-core';
import type { Mamba2Config } from '../../model/config';
import { causalConvSilu, cols, linear, rmsNorm, silu, softplus, type TfConv, type TfUploader, type W } from '../../tfjs/ops';
import type { LayerStep, TfjsEntry, TfRun } from '../kind';
import { mamba2ConvDim, type MAMBA2_PARAMS, type Mamba2LayerParams } from './params';

export interface Mamba2Weights extends TfConv {
  readonly [name: string]: W | undefined;
  readonly norm: W;
  readonly inProjW: W;
  readonly inProjB?: W;
  readonly dtBias: W;
  /** −exp(A_log) per head, computed once. */
  readonly A: W;
  readonly D: W;
  readonly gatedNorm: W;
  readonly outProjW: W;
  readonly outProjB?: W;
}

function upload(_c: Mamba2Config, l: Mamba2LayerParams<'float32'>, up: TfUploader): Mamba2Weights {
  return {
    norm: up.tensor(l.norm), inProjW: up.projection(l.inProjW), inProjB: up.optional(l.inProjB), ...up.conv(l.convW, l.convB),
    dtBias: up.tensor(l.dtBias), A: up.negExp(l.A_log), D: up.tensor(l.D), gatedNorm: up.tensor(l.gatedNorm),
    outProjW: up.projection(l.outProjW), outProjB: up.optional(l.outProjB),
  };
}

function forward(c: Mamba2Config, w: Mamba2Weights, hidden: W, { layout, kernels, at }: TfRun): LayerStep<W> {
  const Din = c.dInner, GN = c.nGroups * c.dState, convDim = mamba2ConvDim(c);
  const proj = linear(rmsNorm(hidden, w.norm, c.eps), w.inProjW, layout, w.inProjB);
  const z = cols(proj, 0, Din);
  const xBC = causalConvSilu(cols(proj, Din, convDim), w, kernels);
  const u = cols(xBC, 0, Din);
  const B = cols(xBC, Din, GN);
  const C = cols(xBC, Din + GN, GN);
  const [lo, hi] = c.timeStepLimit;
  const delta = tf.clipByValue(softplus(tf.add(cols(proj, Din + convDim, c.nHeads), w.dtBias)), lo, Number.isFinite(hi) ? hi : 3.4e38);
  const s = kernels.headScan({ x: u as tf.Tensor2D, delta: delta as tf.Tensor2D, A: w.A as tf.Tensor1D, B: B as tf.Tensor2D, C: C as tf.Tensor2D, D: w.D as tf.Tensor1D, groups: c.nGroups, statesAt: at });
  const normed = rmsNorm(tf.mul(s.y, silu(z)), w.gatedNorm, c.eps, Din / c.normGroupSize);
  const out = linear(normed, w.outProjW, layout, w.outProjB);
  const hiddenOut = tf.add(hidden, out);
  return { next: hiddenOut, internals: { hidden_in: hidden, z, u, delta, B, C, y: s.y, out, hidden_out: hiddenOut, ...(s.h ? { h: s.h } : {}) } };
}

export const mamba2Tfjs: TfjsEntry<Mamba2Config, typeof MAMBA2_PARAMS, Mamba2Weights> = {
  upload,
  projections: ['inProjW', 'outProjW'],
  forward,
};
