/** The Mamba-1 layer on TensorFlow.js: the same computation as reference.ts, which it is tested against. */
import * as tf from '@tensorflow/tfjs-core';
import type { Mamba1Config } from '../../model/config';
import { causalConvSilu, cols, linear, rmsNorm, softplus, type TfConv, type TfUploader, type W } from '../../tfjs/ops';
import type { LayerStep, TfjsEntry, TfRun } from '../kind';
import type { MAMBA1_PARAMS, Mamba1LayerParams } from './params';

export interface Mamba1Weights extends TfConv {
  readonly [name: string]: W | undefined;
  readonly norm: W;
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
}

function upload(_c: Mamba1Config, l: Mamba1LayerParams<'float32'>, up: TfUploader): Mamba1Weights {
  return {
    norm: up.tensor(l.norm), inProjW: up.projection(l.inProjW), inProjB: up.optional(l.inProjB), ...up.conv(l.convW, l.convB),
    xProjW: up.projection(l.xProjW), dtProjW: up.projection(l.dtProjW), dtProjB: up.tensor(l.dtProjB), A: up.negExp(l.A_log), D: up.tensor(l.D),
    outProjW: up.projection(l.outProjW), outProjB: up.optional(l.outProjB),
  };
}

/**
 * Disposes each [L, D] intermediate as soon as it is used (proj, x, the gated output), not at the
 * end of the walker's tidy: a smaller peak per layer, and less wasm heap for good.
 */
function forward(c: Mamba1Config, w: Mamba1Weights, hidden: W, { layout, kernels, at }: TfRun): LayerStep<W> {
  const Dd = c.dInner, N = c.dState, R = c.dtRank;
  const proj = linear(rmsNorm(hidden, w.norm, c.eps), w.inProjW, layout, w.inProjB);
  const z = cols(proj, Dd, Dd);
  const x = cols(proj, 0, Dd);
  proj.dispose();
  const u = causalConvSilu(x, w, kernels);
  x.dispose();
  const xdbl = linear(u, w.xProjW, layout);
  const norm = (t: W) => (c.dtBcNormEps === undefined ? t : rmsNorm(t, undefined, c.dtBcNormEps));
  const B = norm(cols(xdbl, R, N));
  const C = norm(cols(xdbl, R + N, N));
  const delta = softplus(linear(norm(cols(xdbl, 0, R)), w.dtProjW, layout, w.dtProjB));
  const s = kernels.scan({ u: u as tf.Tensor2D, delta: delta as tf.Tensor2D, A: w.A as tf.Tensor2D, B: B as tf.Tensor2D, C: C as tf.Tensor2D, D: w.D as tf.Tensor1D, z: z as tf.Tensor2D, statesAt: at });
  const out = linear(s.gated as W, w.outProjW, layout, w.outProjB);
  s.gated?.dispose();
  const hiddenOut = tf.add(hidden, out);
  return { next: hiddenOut, internals: { hidden_in: hidden, z, u, delta, B, C, y: s.y, out, hidden_out: hiddenOut, ...(s.h ? { h: s.h } : {}) } };
}

export const mamba1Tfjs: TfjsEntry<Mamba1Config, typeof MAMBA1_PARAMS, Mamba1Weights> = {
  upload,
  projections: ['inProjW', 'xProjW', 'dtProjW', 'outProjW'],
  forward,
};
