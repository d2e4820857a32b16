/**
 * The hybrid decoder layer on TensorFlow.js: the same composition as reference.ts, which it is
 * tested against, each operation on its own module's tfjs forward. Weights are kept by full key:
 * linear weights as projections in the model's layout, A_log as A = −exp(A_log) (`<op>A`), each
 * conv as its tfjs forms (`<op>conv1d:…`), Granite's fused experts sliced per expert.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { InternalName } from '../../internals';
import type { LayerEdit, PathAblation } from '../../interventions';
import type { Param } from '../../model/params';
import { linear, rmsNorm, scaled, type TfConv, type TfUploader, type W } from '../../tfjs/ops';
import { attentionTf, type TfOpWeights } from '../attention/tfjs';
import type { LayerStep, TfjsEntry, TfRun } from '../kind';
import { mamba1TfMixer, type Mamba1TfMixer, type TfMixerStep } from '../mamba1/tfjs';
import { mamba2TfMixer, type Mamba2TfMixer } from '../mamba2/tfjs';
import { mlpTf } from '../mlp/tfjs';
import { expertSlice } from '../moe/reference';
import { moeTf } from '../moe/tfjs';
import { composeLayer } from './compose';
import { layerOps, type HybridLayerConfig, type Mamba1Op, type Mamba2Op, type Op, type SharedBlockSpec } from './config';
import type { ParamSpec } from '../kind';

export type HybridTfWeights = Readonly<Record<string, W>>;
type HybridParams = Readonly<Record<string, ParamSpec<HybridLayerConfig>>>;

function upload(c: HybridLayerConfig, p: Readonly<Record<string, Param<'float32'>>>, up: TfUploader): HybridTfWeights {
  const out: Record<string, W> = {};
  const taken = new Set<string>();
  for (const op of layerOps(c)) {
    if (op.kind !== 'mamba1' && op.kind !== 'mamba2') continue;
    const conv = up.conv(p[`${op.key}conv1d.weight`], op.convBias ? p[`${op.key}conv1d.bias`] : undefined);
    Object.assign(out, { [`${op.key}conv1d:W`]: conv.convW, [`${op.key}conv1d:filter`]: conv.convFilter, ...(conv.convB ? { [`${op.key}conv1d:bias`]: conv.convB } : {}) });
    out[`${op.key}A`] = up.negExp(p[`${op.key}A_log`]);
    for (const k of ['conv1d.weight', 'conv1d.bias', 'A_log']) taken.add(op.key + k);
  }
  for (const op of layerOps(c)) {
    if (op.kind !== 'moe' || op.layout !== 'fused') continue;
    // [E, 2I, H] and [E, H, I]: each expert's [2I, H] and [H, I] as projections of their own.
    const [input, output] = [p[`${op.key}input_linear.weight`], p[`${op.key}output_linear.weight`]];
    for (let e = 0; e < op.experts; e++) {
      out[`${op.key}experts.${e}.gate_up`] = up.projection(expertSlice(input, e));
      out[`${op.key}experts.${e}.down`] = up.projection(expertSlice(output, e));
    }
    taken.add(`${op.key}input_linear.weight`).add(`${op.key}output_linear.weight`);
  }
  for (const [key, t] of Object.entries(p)) if (!taken.has(key)) out[key] = t.shape.length === 2 ? up.projection(t) : up.tensor(t);
  return out;
}

function mamba1Weights(op: Mamba1Op, w: TfOpWeights, has: (key: string) => boolean): Mamba1TfMixer {
  const k = op.key;
  const opt = (key: string) => (has(key) ? w(key) : undefined);
  return {
    ...conv(k, w, has), inProjW: w(`${k}in_proj.weight`), inProjB: opt(`${k}in_proj.bias`), xProjW: w(`${k}x_proj.weight`),
    dtProjW: w(`${k}dt_proj.weight`), dtProjB: w(`${k}dt_proj.bias`), A: w(`${k}A`), D: w(`${k}D`),
    outProjW: w(`${k}out_proj.weight`), outProjB: opt(`${k}out_proj.bias`),
    dtNorm: opt(`${k}dt_layernorm.weight`), bNorm: opt(`${k}b_layernorm.weight`), cNorm: opt(`${k}c_layernorm.weight`),
  };
}

function mamba2Weights(op: Mamba2Op, w: TfOpWeights, has: (key: string) => boolean): Mamba2TfMixer {
  const k = op.key;
  const opt = (key: string) => (has(key) ? w(key) : undefined);
  return {
    ...conv(k, w, has), inProjW: w(`${k}in_proj.weight`), inProjB: opt(`${k}in_proj.bias`), dtBias: w(`${k}dt_bias`), A: w(`${k}A`), D: w(`${k}D`),
    gatedNorm: opt(`${k}norm.weight`), outProjW: w(`${k}out_proj.weight`), outProjB: opt(`${k}out_proj.bias`),
  };
}

function conv(k: string, w: TfOpWeights, has: (key: string) => boolean): TfConv {
  return { convW: w(`${k}conv1d:W`), convFilter: w(`${k}conv1d:filter`), convB: has(`${k}conv1d:bias`) ? w(`${k}conv1d:bias`) : undefined };
}

function sharedBlock(s: SharedBlockSpec, w: TfOpWeights, stream: W, embeddings: W, run: TfRun): W {
  return tf.tidy(() => {
    const attention = attentionTf(s.attention, w, rmsNorm(tf.concat([stream, embeddings], 1), w(s.inputNorm.key), s.inputNorm.eps), run.layout).out;
    return mlpTf(s.mlp, w, rmsNorm(attention, w(s.ffNorm.key), s.ffNorm.eps), run.layout);
  });
}

/** ablate-path's replacement of a path's output [L, H]: zeros, or every row its mean over the L positions (as reference.ts's). */
function ablatedPath(x: W, mode: PathAblation['mode']): W {
  return tf.tidy(() => (mode === 'zero' ? tf.zerosLike(x) : tf.broadcastTo(tf.mean(x, 0, true), x.shape)));
}

/** The layer on the stream entering it; `edit`: in its Mamba operation as in a pure Mamba layer, and ablate-path on its paths' outputs. */
function forward(c: HybridLayerConfig, weights: HybridTfWeights, hidden: W, run: TfRun, edit?: LayerEdit): LayerStep<W> {
  const has = (key: string) => weights[key] !== undefined;
  const w: TfOpWeights = (key) => {
    const t = weights[key];
    if (!t) throw new Error(`layer ${c.index} read weight "${key}", which it did not upload`);
    return t;
  };
  const internals: Partial<Record<InternalName, W>> = { hidden_in: hidden };
  const modes = new Map(edit?.ablatePath?.map((a) => [a.path, a.mode]));
  const ablate = (path: PathAblation['path'], x: W) => {
    const mode = modes.get(path);
    return mode ? ablatedPath(x, mode) : x;
  };
  // The mlp path is a feed-forward branch's sum: each of its ops replaced is the sum replaced (zero and mean are linear).
  const feedForward = new Set(c.branches.filter((b) => b.ops.every((op) => op.kind === 'mlp' || op.kind === 'moe')).flatMap((b) => b.ops));
  const runOp = (op: Op, x: W): W => {
    switch (op.kind) {
      case 'mamba1':
      case 'mamba2': {
        const step: TfMixerStep = op.kind === 'mamba1' ? mamba1TfMixer(op, mamba1Weights(op, w, has), x, run, edit) : mamba2TfMixer(op, mamba2Weights(op, w, has), x, run, edit);
        const out = ablate('ssm', step.out);
        Object.assign(internals, step.internals, { ssm_out: out });
        return out;
      }
      case 'attention': {
        const a = attentionTf(op, w, x, run.layout, run.attentionPattern);
        if (a.pattern) internals.attn_pattern = a.pattern;
        return (internals.attn_out = ablate('attention', a.out));
      }
      case 'mlp': {
        const out = mlpTf(op, w, x, run.layout);
        return feedForward.has(op) ? ablate('mlp', out) : out;
      }
      case 'moe': {
        const m = moeTf(op, w, x, run.layout);
        Object.assign(internals, { moe_experts: m.experts, moe_weights: m.weights });
        return feedForward.has(op) ? ablate('mlp', m.out) : m.out;
      }
    }
  };
  const stream = composeLayer<W>(c, hidden, {
    add: (a, b) => tf.add(a, b),
    scale: scaled,
    norm: (x, b) => rmsNorm(x, w(b.norm.key), b.norm.eps),
    shared: (x, b) => {
      if (!run.embeddings) throw new Error(`layer ${c.index}: Zamba2's shared block reads the embeddings, which the forward did not pass`);
      return tf.add(x, linear(sharedBlock(b.shared!, w, x, run.embeddings, run), w(b.shared!.linearKey), run.layout));
    },
    op: runOp,
  }, (name, t) => (internals[name] = t));
  internals.hidden_out = stream;
  return { next: stream, internals };
}

export const hybridTfjs: TfjsEntry<HybridLayerConfig, HybridParams, HybridTfWeights> = {
  upload: (c, p, up) => upload(c, p as Readonly<Record<string, Param<'float32'>>>, up),
  // Every [out, in] matrix is a projection (conv weights are kept apart, as `…conv1d:W`).
  projections: (name, t) => t.rank === 2 && !name.includes('conv1d:'),
  forward,
};
