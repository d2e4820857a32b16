/** The simplified block on TensorFlow.js: the same computation as reference.ts, which it is tested against. */
import type * as tf from '@tensorflow/tfjs-core';
import type { LayerEdit } from '../../interventions';
import type { SeedBlockConfig } from '../../model/config';
import { cols, linear, scaledDelta, softplus, type TfUploader, type W } from '../../tfjs/ops';
import type { LayerStep, TfjsEntry, TfRun } from '../kind';
import type { SEED_BLOCK_PARAMS, SeedBlockParams } from './params';

export interface SeedBlockWeights {
  readonly [name: string]: W | undefined;
  readonly inProjW: W;
  readonly inProjB: W;
  readonly xProjW: W;
  readonly xProjB: W;
  readonly dtProjW: W;
  readonly dtProjB: W;
  /** −exp(A_log), computed once. */
  readonly A: W;
  readonly D: W;
}

function upload(_c: SeedBlockConfig, p: SeedBlockParams<'float32'>, up: TfUploader): SeedBlockWeights {
  return {
    inProjW: up.projection(p.inProjW), inProjB: up.tensor(p.inProjB), xProjW: up.projection(p.xProjW), xProjB: up.tensor(p.xProjB),
    dtProjW: up.projection(p.dtProjW), dtProjB: up.tensor(p.dtProjB), A: up.negExp(p.A_log), D: up.tensor(p.D),
  };
}

function forward(c: SeedBlockConfig, w: SeedBlockWeights, x: W, { layout, kernels, at }: TfRun, edit?: LayerEdit): LayerStep<W> {
  const D = c.dModel, N = c.dState;
  const proj = linear(x, w.inProjW, layout, w.inProjB);
  const xIn = cols(proj, 0, D);
  const res = cols(proj, D, D);
  const params = linear(xIn, w.xProjW, layout, w.xProjB);
  const B = cols(params, 0, N);
  const C = cols(params, N, N);
  const delta = scaledDelta(softplus(linear(cols(params, 2 * N, 1), w.dtProjW, layout, w.dtProjB)), edit);
  const s = kernels.scan({ u: xIn as tf.Tensor2D, delta: delta as tf.Tensor2D, A: w.A as tf.Tensor2D, B: B as tf.Tensor2D, C: C as tf.Tensor2D, D: w.D as tf.Tensor1D, z: res as tf.Tensor2D, statesAt: at, edit: edit?.scan, patch: edit?.patch });
  const out = s.gated as W;
  return { next: out, internals: { u: xIn, z: res, B, C, delta, y: s.y, out, ...(s.h ? { h: s.h } : {}) } };
}

export const seedBlockTfjs: TfjsEntry<SeedBlockConfig, typeof SEED_BLOCK_PARAMS, SeedBlockWeights> = {
  upload,
  projections: ['inProjW', 'xProjW', 'dtProjW'],
  forward,
};
