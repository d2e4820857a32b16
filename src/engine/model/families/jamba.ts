/**
 * AI21's Jamba (model_type "jamba"): Mamba-1 mixers with learned RMSNorms on dt, B and C, and
 * attention every attn_layer_period layers (no positional encoding); each layer's feed-forward is
 * a SwiGLU MLP or, every expert_layer_period layers, a mixture of experts (softmax over all of
 * them, the top k kept and not renormalised). transformers' modeling_jamba.py.
 */
import type { Branch } from '../../layers/hybrid/config';
import type { HybridConfig } from '../config';
import type { ConfigFields } from '../configFields';
import { attentionOp, mlpOp, norm } from './common';

export function jambaConfig(f: ConfigFields, source: string): HybridConfig {
  const H = f.int('hidden_size');
  const nLayer = f.int('num_hidden_layers');
  const eps = f.num('rms_norm_eps', 1e-6);
  const heads = f.int('num_attention_heads');
  const experts = f.int('num_experts', f.int('num_local_experts', 16));
  const intermediate = f.int('intermediate_size');
  const layers = Array.from({ length: nLayer }, (_, i) => {
    const at = `model.layers.${i}.`;
    const attention = i % f.int('attn_layer_period', 8) === f.int('attn_layer_offset', 4, 0);
    const moe = experts > 1 && i % f.int('expert_layer_period', 2) === f.int('expert_layer_offset', 1, 0);
    const mixer = attention
      ? attentionOp(`${at}self_attn.`, { inDim: H, heads, kvHeads: f.int('num_key_value_heads', heads), headDim: H / heads }, source)
      : {
          kind: 'mamba1' as const, key: `${at}mamba.`, inScale: 1, outScale: 1,
          dInner: f.int('mamba_expand', 2) * H, dState: f.int('mamba_d_state', 16), dConv: f.int('mamba_d_conv', 4),
          dtRank: f.intOrAuto('mamba_dt_rank', Math.ceil(H / 16)),
          convBias: f.bool('mamba_conv_bias', true), projBias: f.bool('mamba_proj_bias', false), dtBcNormEps: eps,
        };
    const ffn = moe
      ? { kind: 'moe' as const, key: `${at}feed_forward.`, routerKey: `${at}feed_forward.router.weight`, experts, topK: f.int('num_experts_per_tok', 2), intermediate, routing: 'softmax-topk' as const, layout: 'per-expert' as const, inScale: 1, outScale: 1 }
      : mlpOp(`${at}feed_forward.`, { intermediate, act: 'silu', layout: 'separate' });
    const branches: Branch[] = [
      { norm: norm(`${at}input_layernorm.weight`, eps), ops: [mixer], scale: 1 },
      { norm: norm(`${at}pre_ff_layernorm.weight`, eps), ops: [ffn], scale: 1 },
    ];
    return { arch: 'hybrid-layer' as const, family: 'jamba', index: i, dModel: H, branches };
  });
  return {
    arch: 'hybrid', family: 'jamba', dModel: H, nLayer, vocabSize: f.int('vocab_size'), eps, tieEmbeddings: f.bool('tie_word_embeddings', false),
    backbone: { embedding: 'model.embed_tokens.weight', finalNorm: 'model.final_layernorm.weight' }, embeddingScale: 1, logitsScale: 1, layers,
  };
}
