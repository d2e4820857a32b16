/**
 * A hybrid decoder layer in float64 (the oracle): compose.ts's composition over the operations'
 * reference forwards. Zamba2's shared block runs on concat(x, embeddings) and its output, through
 * the layer's linear, joins x before the branch's norm (not the residual). Every path's output is
 * recorded (internals.ts), after ablate-path's replacement when the edit asks for one.
 */
import type { InternalName } from '../../internals';
import type { LayerEdit, PathAblation } from '../../interventions';
import { add, concatColumns, linear, rmsNorm, scaled, type F64 } from '../../reference/ops';
import { attentionReference } from '../attention/reference';
import type { LayerCarry, ReferenceRun, ReferenceStep } from '../kind';
import { mamba1Mixer } from '../mamba1/reference';
import { mamba2Mixer } from '../mamba2/reference';
import { mlpReference } from '../mlp/reference';
import { moeReference } from '../moe/reference';
import { composeLayer } from './compose';
import type { HybridLayerConfig, Op, SharedBlockSpec } from './config';
import { mamba1MixerWeights, mamba2MixerWeights, type OpWeights } from './weights';

function sharedBlock(s: SharedBlockSpec, w: OpWeights, stream: F64, embeddings: F64): F64 {
  const attention = attentionReference(s.attention, w, rmsNorm(concatColumns(stream, embeddings), w(s.inputNorm.key), s.inputNorm.eps)).out;
  return mlpReference(s.mlp, w, rmsNorm(attention, w(s.ffNorm.key), s.ffNorm.eps));
}

/** ablate-path's replacement of a path's output [L, H]: zeros, or every row its mean over the L positions. */
function ablatedPath(x: F64, mode: PathAblation['mode']): F64 {
  const [L, H] = x.shape;
  const data = new Float64Array(L * H);
  if (mode === 'mean') {
    const mean = new Float64Array(H);
    for (let t = 0; t < L; t++) for (let j = 0; j < H; j++) mean[j] += x.data[t * H + j] / L;
    for (let t = 0; t < L; t++) data.set(mean, t * H);
  }
  return { shape: x.shape, data };
}

export function hybridReference(c: HybridLayerConfig, p: Readonly<Record<string, F64>>, hidden: F64, at: Int32Array, carry?: LayerCarry, edit?: LayerEdit, run?: ReferenceRun): ReferenceStep {
  const w: OpWeights = (key) => {
    const t = p[key];
    if (!t) throw new Error(`layer ${c.index} read weight "${key}", which its specs do not list`);
    return t;
  };
  const internals: Partial<Record<InternalName, F64>> = { hidden_in: hidden };
  let next: LayerCarry = { h: new Float64Array(0) };
  const modes = new Map(edit?.ablatePath?.map((a) => [a.path, a.mode]));
  const ablate = (path: PathAblation['path'], x: F64) => {
    const mode = modes.get(path);
    return mode ? ablatedPath(x, mode) : x;
  };
  // The mlp path is a feed-forward branch's sum (mlp_out); its ops replaced each, the sum is replaced (zero or mean: both linear).
  const feedForward = new Set(c.branches.filter((b) => b.ops.every((op) => op.kind === 'mlp' || op.kind === 'moe')).flatMap((b) => b.ops));
  const run1 = (op: Op, x: F64): F64 => {
    switch (op.kind) {
      case 'mamba1':
      case 'mamba2': {
        const step = op.kind === 'mamba1' ? mamba1Mixer(op, mamba1MixerWeights(op, w), x, at, carry, edit) : mamba2Mixer(op, mamba2MixerWeights(op, w), x, at, carry, edit);
        const out = ablate('ssm', step.out);
        Object.assign(internals, step.internals, { ssm_out: out });
        next = step.carry;
        return out;
      }
      case 'attention': {
        const a = attentionReference(op, w, x, run?.attentionPattern);
        if (a.pattern) internals.attn_pattern = a.pattern;
        return (internals.attn_out = ablate('attention', a.out));
      }
      case 'mlp': {
        const out = mlpReference(op, w, x);
        return feedForward.has(op) ? ablate('mlp', out) : out;
      }
      case 'moe': {
        const m = moeReference(op, w, x);
        Object.assign(internals, { moe_experts: m.experts, moe_weights: m.weights });
        return feedForward.has(op) ? ablate('mlp', m.out) : m.out;
      }
    }
  };
  const stream = composeLayer(c, hidden, {
    add,
    scale: scaled,
    norm: (x, b) => rmsNorm(x, w(b.norm.key), b.norm.eps),
    shared: (x, b) => {
      if (!run) throw new Error(`layer ${c.index}: Zamba2's shared block reads the embeddings, which the forward did not pass`);
      return add(x, linear(sharedBlock(b.shared!, w, x, run.embeddings), w(b.shared!.linearKey)));
    },
    op: run1,
  }, (name, t) => (internals[name] = t));
  internals.hidden_out = stream;
  return { next: stream, internals, carry: next };
}
