/**
 * NVIDIA's Nemotron-H (model_type "nemotron_h"): one operation per block, each a pre-norm
 * residual: Mamba-2 with the per-group gated norm, attention with no positional encoding, or a
 * relu² MLP, as layers_block_type (or the legacy hybrid_override_pattern "M-M*") says. Δ is
 * clamped below at time_step_min. The mixture-of-experts blocks ("moe", "E") are refused by name
 * until they are implemented. transformers' modeling_nemotron_h.py.
 */
import { InputError } from '../../errors';
import type { Op } from '../../layers/hybrid/config';
import type { HybridConfig } from '../config';
import type { ConfigFields } from '../configFields';
import { attentionOp, layerTypes, mamba2Op, mlpOp, norm, type LayerType } from './common';

const PATTERN: Readonly<Record<string, LayerType>> = { M: 'linear_attention', '-': 'mlp', '*': 'full_attention', E: 'moe' };

function blockTypes(f: ConfigFields, source: string): LayerType[] {
  const listed = f.raw('layers_block_type') ?? f.raw('layer_types');
  if (listed !== undefined && listed !== null) return layerTypes(listed, 'layers_block_type', ['linear_attention', 'full_attention', 'mlp', 'moe'], source);
  const pattern = f.raw('hybrid_override_pattern');
  if (typeof pattern !== 'string' || !pattern) throw new InputError(source, 'has neither "layers_block_type" nor "hybrid_override_pattern": the block pattern is unknown');
  return [...pattern].map((ch, i) => {
    const t = PATTERN[ch];
    if (!t) throw new InputError(source, `"hybrid_override_pattern"[${i}] is ${JSON.stringify(ch)}: expected M, -, * or E`);
    return t;
  });
}

export function nemotronHConfig(f: ConfigFields, source: string): HybridConfig {
  const H = f.int('hidden_size');
  const eps = f.num('layer_norm_epsilon', 1e-5);
  const types = blockTypes(f, source);
  const heads = f.int('num_attention_heads');
  const mHeads = f.int('mamba_num_heads', 128);
  const mHeadDim = f.int('mamba_head_dim', 64);
  const groups = f.int('n_groups', 8);
  const layers = types.map((type, i) => {
    const at = `backbone.layers.${i}.mixer.`;
    let op: Op;
    if (type === 'moe') throw new InputError(source, `layer ${i} is a mixture-of-experts block ("moe"): Nemotron-H's routed experts are not supported yet`);
    if (type === 'linear_attention') {
      op = mamba2Op(at, {
        heads: mHeads, headDim: mHeadDim, dState: f.int('ssm_state_size', 128), groups, dConv: f.int('conv_kernel', 4),
        convBias: f.bool('use_conv_bias', true), projBias: f.bool('use_bias', false),
        // The mixer clamps at (time_step_min, ∞); config.json's time_step_limit is not read.
        dtLimit: [f.num('time_step_min', 0.001), Infinity],
        gatedNorm: { eps, groupSize: (mHeads * mHeadDim) / groups, beforeGate: false },
      }, source);
    } else if (type === 'full_attention') {
      op = attentionOp(at, { inDim: H, heads, kvHeads: f.int('num_key_value_heads', heads), headDim: f.int('head_dim', H / heads) }, source);
    } else {
      op = mlpOp(at, { intermediate: f.int('intermediate_size'), act: 'relu2', layout: 'ungated' });
    }
    return { arch: 'hybrid-layer' as const, family: 'nemotron_h', index: i, dModel: H, branches: [{ norm: norm(`backbone.layers.${i}.norm.weight`, eps), ops: [op], scale: 1 }] };
  });
  return {
    arch: 'hybrid', family: 'nemotron_h', dModel: H, nLayer: layers.length, vocabSize: f.int('vocab_size'), eps, tieEmbeddings: f.bool('tie_word_embeddings', false),
    backbone: { embedding: 'backbone.embeddings.weight', finalNorm: 'backbone.norm_f.weight' }, embeddingScale: 1, logitsScale: 1, layers,
  };
}
