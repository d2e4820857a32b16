/**
 * TII's Falcon-H1 (model_type "falcon_h1"): in every layer attention (RoPE over the whole head)
 * and Mamba-2 run side by side on the same normed stream and are summed into one residual, then a
 * SwiGLU MLP. The µP multipliers of config.json (embedding, lm_head, key, attention in/out, ssm
 * in/out, the five in_proj segments, the MLP's two) are applied where the model applies them;
 * they are not stored as weights. transformers' modeling_falcon_h1.py.
 */
import { InputError } from '../../errors';
import type { Branch } from '../../layers/hybrid/config';
import type { HybridConfig } from '../config';
import { timeStepLimit, type ConfigFields } from '../configFields';
import { attentionOp, mamba2Op, mlpOp, norm, ropeTheta } from './common';

function numbers(f: ConfigFields, key: string, count: number, source: string): number[] {
  const v = f.raw(key) ?? Array.from({ length: count }, () => 1);
  if (!Array.isArray(v) || v.length !== count || !v.every((x) => typeof x === 'number')) throw new InputError(source, `"${key}" must be ${count} numbers, got ${JSON.stringify(v)}`);
  return v;
}

export function falconH1Config(f: ConfigFields, source: string): HybridConfig {
  const H = f.int('hidden_size');
  const eps = f.num('rms_norm_eps', 1e-5);
  const heads = f.int('num_attention_heads');
  const headDim = f.int('head_dim', H / heads);
  const dInner = f.has('mamba_d_ssm') ? f.int('mamba_d_ssm') : f.int('mamba_expand', 2) * H;
  const mHeads = f.int('mamba_n_heads', 128);
  const mHeadDim = f.intOrAuto('mamba_d_head', dInner / mHeads);
  const groups = f.int('mamba_n_groups', 1);
  const [z, x, B, C, dt] = numbers(f, 'ssm_multipliers', 5, source);
  const [gateScale, downScale] = numbers(f, 'mlp_multipliers', 2, source);
  const rope = { dims: headDim, theta: ropeTheta(f, source) };
  const layers = Array.from({ length: f.int('num_hidden_layers') }, (_, i) => {
    const at = `model.layers.${i}.`;
    const mamba = mamba2Op(`${at}mamba.`, {
      heads: mHeads, headDim: mHeadDim, dState: f.int('mamba_d_state', 256), groups, dConv: f.int('mamba_d_conv', 4),
      convBias: f.bool('mamba_conv_bias', true), projBias: f.bool('mamba_proj_bias', false), outProjBias: f.bool('projectors_bias', false),
      dtLimit: timeStepLimit(f.raw('time_step_limit'), source),
      gatedNorm: f.bool('mamba_rms_norm', false) ? { eps, groupSize: dInner / groups, beforeGate: f.bool('mamba_norm_before_gate', true) } : undefined,
      segmentScales: [z, x, B, C, dt], inScale: f.num('ssm_in_multiplier', 1), outScale: f.num('ssm_out_multiplier', 1),
    }, source);
    const attention = attentionOp(`${at}self_attn.`, {
      inDim: H, heads, kvHeads: f.int('num_key_value_heads', heads), headDim, rope,
      keyScale: f.num('key_multiplier', 1), inScale: f.num('attention_in_multiplier', 1), outScale: f.num('attention_out_multiplier', 1),
    }, source);
    const branches: Branch[] = [
      { norm: norm(`${at}input_layernorm.weight`, eps), ops: [mamba, attention], scale: 1 },
      { norm: norm(`${at}pre_ff_layernorm.weight`, eps), ops: [mlpOp(`${at}feed_forward.`, { intermediate: f.int('intermediate_size'), act: 'silu', layout: 'separate', gateScale, downScale })], scale: 1 },
    ];
    return { arch: 'hybrid-layer' as const, family: 'falcon_h1', index: i, dModel: H, branches };
  });
  return {
    arch: 'hybrid', family: 'falcon_h1', dModel: H, nLayer: layers.length, vocabSize: f.int('vocab_size'), eps, tieEmbeddings: f.bool('tie_word_embeddings', false),
    backbone: { embedding: 'model.embed_tokens.weight', finalNorm: 'model.final_layernorm.weight' },
    embeddingScale: f.num('embedding_multiplier', 1), logitsScale: f.num('lm_head_multiplier', 1), layers,
  };
}
