/**
 * IBM's Bamba (model_type "bamba") and Granite 4.0-H (model_type "granitemoehybrid"): Mamba-2
 * mixers with the gated RMSNorm over all of d_inner, and attention at the configured layers.
 * Bamba: partial RoPE (half of each head, forced by transformers), a SwiGLU MLP in every layer.
 * Granite: no positional encoding, attention scaled by attention_multiplier, a mixture of experts
 * (the top k logits, then a softmax over them) plus a shared MLP, and the µP multipliers on the
 * embeddings, each branch and the logits. transformers' modeling_bamba.py, modeling_granitemoehybrid.py.
 */
import type { Branch, MlpOp, MoeOp, Op } from '../../layers/hybrid/config';
import type { HybridConfig } from '../config';
import { timeStepLimit, type ConfigFields } from '../configFields';
import { attentionOp, layerTypes, mamba2Op, mlpOp, norm, ropeTheta } from './common';

function mixer(f: ConfigFields, at: string, attention: boolean, eps: number, rope: { dims: number; theta: number } | undefined, scale: number | undefined, source: string): Op {
  const H = f.int('hidden_size');
  const heads = f.int('num_attention_heads');
  if (attention) return attentionOp(`${at}self_attn.`, { inDim: H, heads, kvHeads: f.int('num_key_value_heads', heads), headDim: H / heads, rope, scale }, source);
  const dInner = f.int('mamba_expand', 2) * H;
  const mHeads = f.int('mamba_n_heads', 128);
  const headDim = f.intOrAuto('mamba_d_head', dInner / mHeads);
  return mamba2Op(`${at}mamba.`, {
    heads: mHeads, headDim, dState: f.int('mamba_d_state', 256), groups: f.int('mamba_n_groups', 1), dConv: f.int('mamba_d_conv', 4),
    convBias: f.bool('mamba_conv_bias', true), projBias: f.bool('mamba_proj_bias', false), dtLimit: timeStepLimit(f.raw('time_step_limit'), source),
    // transformers' gated norm: the gate first, then one RMS over all of d_inner, with the model's rms_norm_eps.
    gatedNorm: { eps, groupSize: mHeads * headDim, beforeGate: false },
  }, source);
}

export function bambaConfig(f: ConfigFields, source: string): HybridConfig {
  const H = f.int('hidden_size');
  const nLayer = f.int('num_hidden_layers');
  const eps = f.num('rms_norm_eps', 1e-5);
  const headDim = H / f.int('num_attention_heads');
  const attnAt = new Set(Array.isArray(f.raw('attn_layer_indices')) ? (f.raw('attn_layer_indices') as number[]) : []);
  // BambaConfig hard-codes partial_rotary_factor 0.5 ("for BC").
  const rope = { dims: Math.floor(headDim * 0.5), theta: ropeTheta(f, source) };
  const layers = Array.from({ length: nLayer }, (_, i) => {
    const at = `model.layers.${i}.`;
    const branches: Branch[] = [
      { norm: norm(`${at}input_layernorm.weight`, eps), ops: [mixer(f, at, attnAt.has(i), eps, rope, undefined, source)], scale: 1 },
      { norm: norm(`${at}pre_ff_layernorm.weight`, eps), ops: [mlpOp(`${at}feed_forward.`, { intermediate: f.int('intermediate_size'), act: 'silu', layout: 'separate' })], scale: 1 },
    ];
    return { arch: 'hybrid-layer' as const, family: 'bamba', index: i, dModel: H, branches };
  });
  return {
    arch: 'hybrid', family: 'bamba', dModel: H, nLayer, vocabSize: f.int('vocab_size'), eps, tieEmbeddings: f.bool('tie_word_embeddings', false),
    backbone: { embedding: 'model.embed_tokens.weight', finalNorm: 'model.final_layernorm.weight' }, embeddingScale: 1, logitsScale: 1, layers,
  };
}

export function graniteHybridConfig(f: ConfigFields, source: string): HybridConfig {
  const H = f.int('hidden_size');
  const nLayer = f.int('num_hidden_layers');
  const eps = f.num('rms_norm_eps', 1e-6);
  const headDim = H / f.int('num_attention_heads');
  const types = f.has('layer_types') ? layerTypes(f.raw('layer_types'), 'layer_types', ['linear_attention', 'full_attention'], source) : Array.from({ length: nLayer }, () => 'linear_attention');
  const rope = f.raw('position_embedding_type') === 'rope' ? { dims: headDim, theta: ropeTheta(f, source) } : undefined;
  const residual = f.num('residual_multiplier', 1);
  const experts = f.int('num_local_experts', 0, 0);
  const layers = types.map((type, i) => {
    const at = `model.layers.${i}.`;
    const shared: MlpOp = mlpOp(`${at}shared_mlp.`, { intermediate: f.int('shared_intermediate_size', 1024), act: 'silu', layout: 'fused', fusedNames: ['input_linear', 'output_linear'] });
    const moe: MoeOp[] = experts > 0
      ? [{ kind: 'moe', key: `${at}block_sparse_moe.`, routerKey: `${at}block_sparse_moe.router.layer.weight`, experts, topK: f.int('num_experts_per_tok', 2), intermediate: f.int('intermediate_size'), routing: 'topk-softmax', layout: 'fused', inScale: 1, outScale: 1 }]
      : [];
    const branches: Branch[] = [
      { norm: norm(`${at}input_layernorm.weight`, eps), ops: [mixer(f, at, type === 'full_attention', eps, rope, f.num('attention_multiplier', headDim ** -0.5), source)], scale: residual },
      { norm: norm(`${at}post_attention_layernorm.weight`, eps), ops: [...moe, shared], scale: residual },
    ];
    return { arch: 'hybrid-layer' as const, family: 'granitemoehybrid', index: i, dModel: H, branches };
  });
  return {
    arch: 'hybrid', family: 'granitemoehybrid', dModel: H, nLayer, vocabSize: f.int('vocab_size'), eps, tieEmbeddings: f.bool('tie_word_embeddings', false),
    backbone: { embedding: 'model.embed_tokens.weight', finalNorm: 'model.norm.weight' },
    embeddingScale: f.num('embedding_multiplier', 1), logitsScale: 1 / f.num('logits_scaling', 1), layers,
  };
}
