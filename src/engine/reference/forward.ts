/**
 * The float64 reference forward: the numerics oracle every other path is tested against.
 * One function per architecture, each a direct transcription of transformers' module code.
 */
import { keptOnly, resolvePositions, wantsLayer, type ForwardOptions, type ForwardResult, type LayerInternals } from '../internals';
import type { Mamba1Config, Mamba2Config, SeedBlockConfig } from '../model/config';
import type { LoadedModel } from '../model/load';
import type { Mamba1Params } from '../model/mamba1';
import { mamba2ConvDim, type Mamba2Params } from '../model/mamba2';
import type { SeedBlockParams } from '../model/seedBlock';
import { add, causalConvSilu, columns, embed, gate, linear, map, rmsNorm, softplus, type F64 } from './ops';
import { negExp, selectiveScan, selectiveScanHeads } from './scan';

export function referenceForward(model: LoadedModel<'float64'>, ids: ArrayLike<number>, options: ForwardOptions = {}): ForwardResult<Float64Array> {
  switch (model.config.arch) {
    case 'mamba1': return mamba1Forward(model.config, model.params as Mamba1Params<'float64'>, ids, options);
    case 'mamba2': return mamba2Forward(model.config, model.params as Mamba2Params<'float64'>, ids, options);
    case 'seed': throw new Error('the simplified block takes a hidden-state input, not token ids: use referenceSeedBlock');
  }
}

function mamba1Forward(c: Mamba1Config, p: Mamba1Params<'float64'>, ids: ArrayLike<number>, options: ForwardOptions): ForwardResult<Float64Array> {
  const at = resolvePositions(options.statesAt ?? [], ids.length);
  let hidden = embed(ids, p.embedding);
  const layers: LayerInternals<Float64Array>[] = [];
  p.layers.forEach((lp, i) => {
    options.checkCancelled?.();
    const D = c.dInner, N = c.dState, R = c.dtRank;
    const proj = linear(rmsNorm(hidden, lp.norm, c.eps), lp.inProjW, lp.inProjB);
    const z = columns(proj, D, D);
    const u = causalConvSilu(columns(proj, 0, D), lp.convW, lp.convB);
    const xdbl = linear(u, lp.xProjW);
    const B = columns(xdbl, R, N);
    const C = columns(xdbl, R + N, N);
    const delta = map(linear(columns(xdbl, 0, R), lp.dtProjW, lp.dtProjB), softplus);
    const { y, h } = selectiveScan(u, delta, negExp(lp.A_log), B, C, lp.D, at);
    const out = linear(gate(y, z), lp.outProjW, lp.outProjB);
    const hiddenOut = add(hidden, out);
    if (wantsLayer(options, i)) {
      layers.push({ layer: i, tensors: keptOnly({ hidden_in: hidden, z, u, delta, B, C, y, out, hidden_out: hiddenOut, ...(at.length ? { h } : {}) }, options.keep), hTokens: at.length ? at : undefined });
    }
    hidden = hiddenOut;
  });
  return { logits: linear(rmsNorm(hidden, p.normF, c.eps), p.lmHead), layers };
}

function mamba2Forward(c: Mamba2Config, p: Mamba2Params<'float64'>, ids: ArrayLike<number>, options: ForwardOptions): ForwardResult<Float64Array> {
  const at = resolvePositions(options.statesAt ?? [], ids.length);
  const Din = c.dInner, GN = c.nGroups * c.dState, convDim = mamba2ConvDim(c);
  const [lo, hi] = c.timeStepLimit;
  let hidden = embed(ids, p.embedding);
  const layers: LayerInternals<Float64Array>[] = [];
  p.layers.forEach((lp, i) => {
    options.checkCancelled?.();
    const proj = linear(rmsNorm(hidden, lp.norm, c.eps), lp.inProjW, lp.inProjB);
    const z = columns(proj, 0, Din);
    const xBC = causalConvSilu(columns(proj, Din, convDim), lp.convW, lp.convB);
    const u = columns(xBC, 0, Din);
    const B = columns(xBC, Din, GN);
    const C = columns(xBC, Din + GN, GN);
    const dtRaw = columns(proj, Din + convDim, c.nHeads);
    const delta: F64 = {
      shape: dtRaw.shape,
      data: dtRaw.data.map((v, j) => Math.min(hi, Math.max(lo, softplus(v + lp.dtBias.data[j % c.nHeads])))),
    };
    const { y, h } = selectiveScanHeads(u, delta, negExp(lp.A_log), B, C, lp.D, c.nGroups, at);
    const normed = rmsNorm(gate(y, z), lp.gatedNorm, c.eps, Din / c.nGroups);
    const out = linear(normed, lp.outProjW, lp.outProjB);
    const hiddenOut = add(hidden, out);
    if (wantsLayer(options, i)) {
      layers.push({ layer: i, tensors: keptOnly({ hidden_in: hidden, z, u, delta, B, C, y, out, hidden_out: hiddenOut, ...(at.length ? { h } : {}) }, options.keep), hTokens: at.length ? at : undefined });
    }
    hidden = hiddenOut;
  });
  return { logits: linear(rmsNorm(hidden, p.normF, c.eps), p.lmHead), layers };
}

export interface SeedBlockResult {
  readonly x_in: F64;
  readonly res: F64;
  readonly B: F64;
  readonly C: F64;
  readonly delta: F64;
  /** scan(x_in) + D·x_in, before the gate. */
  readonly y: F64;
  /** y ⊙ silu(res): the block's output. */
  readonly out: F64;
  readonly h: F64;
}

export function referenceSeedBlock(c: SeedBlockConfig, p: SeedBlockParams<'float64'>, x: F64, statesAt: readonly number[] = []): SeedBlockResult {
  const D = c.dModel, N = c.dState;
  const proj = linear(x, p.inProjW, p.inProjB);
  const xIn = columns(proj, 0, D);
  const res = columns(proj, D, D);
  const params = linear(xIn, p.xProjW, p.xProjB);
  const B = columns(params, 0, N);
  const C = columns(params, N, N);
  const delta = map(linear(columns(params, 2 * N, 1), p.dtProjW, p.dtProjB), softplus);
  const { y, h } = selectiveScan(xIn, delta, negExp(p.A_log), B, C, p.D, resolvePositions(statesAt, x.shape[0]));
  return { x_in: xIn, res, B, C, delta, y, out: gate(y, res), h };
}


