/**
 * Zyphra's Zamba2 (model_type "zamba2"): Mamba-2 layers, and "hybrid" layers that first run a
 * shared transformer block (attention + a GELU gate-up MLP on concat(stream, embeddings), with no
 * residual of its own, its weights shared by every hybrid layer, per-use LoRA adapters) and add
 * it, through the layer's own linear, to the stream entering the Mamba branch's norm.
 * Zamba2Config recomputes its derived sizes from hidden_size, as here. transformers' modeling_zamba2.py.
 */
import type { Branch, SharedBlockSpec } from '../../layers/hybrid/config';
import type { HybridConfig } from '../config';
import type { ConfigFields } from '../configFields';
import { activation, attentionOp, layerTypes, mamba2Op, mlpOp, norm, ropeTheta } from './common';

export function zamba2Config(f: ConfigFields, source: string): HybridConfig {
  const H = f.int('hidden_size');
  const eps = f.num('rms_norm_eps', 1e-5);
  const types = layerTypes(f.raw('layers_block_type'), 'layers_block_type', ['linear_attention', 'hybrid'], source);
  const hybridIds = types.flatMap((t, i) => (t === 'hybrid' ? [i] : []));
  const heads = f.int('num_attention_heads');
  const attnHeadDim = (2 * H) / heads;
  const mHeads = f.int('n_mamba_heads', 8);
  const dInner = f.int('mamba_expand', 2) * H;
  const groups = f.int('mamba_ngroups', 1);
  const memBlocks = f.int('num_mem_blocks', 1);
  const rope = f.bool('use_mem_rope', false) ? { dims: attnHeadDim, theta: ropeTheta(f, source) } : undefined;
  const attentionAdapters = f.bool('use_shared_attention_adapter', false);
  const rank = f.int('adapter_rank', 128);
  const mamba = (key: string) => mamba2Op(key, {
    heads: mHeads, headDim: dInner / mHeads, dState: f.int('mamba_d_state', 64), groups, dConv: f.int('mamba_d_conv', 4),
    convBias: true, projBias: f.bool('add_bias_linear', false), dtLimit: [f.num('time_step_min', 0.001), Infinity],
    // Zamba2RMSNormGated's eps is fixed at 1e-5, whatever rms_norm_eps says.
    gatedNorm: { eps: 1e-5, groupSize: dInner / groups, beforeGate: false },
  }, source);
  const layers = types.map((type, i) => {
    const at = `model.layers.${i}.`;
    if (type !== 'hybrid') return { arch: 'hybrid-layer' as const, family: 'zamba2', index: i, dModel: H, branches: [{ norm: norm(`${at}input_layernorm.weight`, eps), ops: [mamba(`${at}mamba.`)], scale: 1 }] };
    // The j-th hybrid layer uses shared block j % num_mem_blocks, stored under the first hybrid layer that uses it, and adapter j.
    const j = hybridIds.indexOf(i);
    const block = `model.layers.${hybridIds[j % memBlocks]}.shared_transformer.`;
    const shared: SharedBlockSpec = {
      inputNorm: norm(`${block}input_layernorm.weight`, eps),
      attention: attentionOp(`${block}self_attn.`, { inDim: 2 * H, heads, kvHeads: f.int('num_key_value_heads', heads), headDim: attnHeadDim, scale: (attnHeadDim / 2) ** -0.5, rope, adapter: attentionAdapters ? { index: j, rank } : undefined }, source),
      ffNorm: norm(`${block}pre_ff_layernorm.weight`, eps),
      mlp: mlpOp(`${block}feed_forward.`, { intermediate: f.int('intermediate_size', 4 * H), act: activation(f.raw('hidden_act') ?? 'gelu', 'hidden_act', source), layout: 'fused', fusedNames: ['gate_up_proj', 'down_proj'], adapter: { index: j, rank } }),
      linearKey: `${at}linear.weight`,
    };
    const branches: Branch[] = [{ norm: norm(`${at}mamba_decoder.input_layernorm.weight`, eps), ops: [mamba(`${at}mamba_decoder.mamba.`)], scale: 1, shared }];
    return { arch: 'hybrid-layer' as const, family: 'zamba2', index: i, dModel: H, branches };
  });
  return {
    arch: 'hybrid', family: 'zamba2', dModel: H, nLayer: layers.length, vocabSize: f.int('vocab_size'), eps, tieEmbeddings: f.bool('tie_word_embeddings', true),
    backbone: { embedding: 'model.embed_tokens.weight', finalNorm: 'model.final_layernorm.weight' }, embeddingScale: 1, logitsScale: 1, layers,
  };
}
