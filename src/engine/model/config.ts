/**
 * config.json → one normalized description per architecture. Reads transformers' Mamba
 * (`model_type: "mamba"`), Mamba-2 (`"mamba2"`), the hybrid families (families/) and the
 * original state-spaces layout (`d_model`, `n_layer`, `ssm_cfg`). transformers writes non-finite floats as
 * {"__float__": "Infinity"}; those are decoded, never eval'd.
 */
import { InputError } from '../errors';
import { decodeUtf8, type FileStore } from '../io';
import { ConfigFields, timeStepLimit } from './configFields';
import { mambaOp, type HybridLayerConfig } from '../layers/hybrid/config';
import { HYBRID_FAMILIES } from './families';

export interface Mamba1Config {
  readonly arch: 'mamba1';
  readonly dModel: number;
  readonly nLayer: number;
  readonly dInner: number;
  readonly dState: number;
  readonly dConv: number;
  readonly dtRank: number;
  readonly vocabSize: number;
  readonly eps: number;
  readonly convBias: boolean;
  /** in_proj/out_proj bias (use_bias). */
  readonly projBias: boolean;
  readonly tieEmbeddings: boolean;
  /**
   * FalconMamba: a weightless RMSNorm with this eps (config mixer_rms_eps) on the low-rank dt, on
   * B and on C right after the x_proj split, before dt_proj. This is transformers' inference path;
   * its fused training kernel normalizes after dt_proj instead, a different function.
   */
  readonly dtBcNormEps?: number;
}

export interface Mamba2Config {
  readonly arch: 'mamba2';
  readonly dModel: number;
  readonly nLayer: number;
  /** nHeads × headDim. */
  readonly dInner: number;
  readonly nHeads: number;
  readonly headDim: number;
  readonly dState: number;
  readonly nGroups: number;
  readonly dConv: number;
  readonly chunkSize: number;
  readonly vocabSize: number;
  readonly eps: number;
  readonly convBias: boolean;
  readonly projBias: boolean;
  readonly tieEmbeddings: boolean;
  /** Δ is clamped to this range after softplus (transformers skips the clamp for [0, ∞)). */
  readonly timeStepLimit: readonly [number, number];
  /**
   * Channels the gated RMSNorm normalizes together: d_inner / n_groups as mamba_ssm's
   * RMSNormGated does (the released checkpoints were trained so), or all of d_inner as
   * transformers 5.17 does (withGatedNorm). The two agree for n_groups 1.
   */
  readonly normGroupSize: number;
}

/** The design note's simplified block: no conv, no out_proj, x_proj ordered B, C, dt (dt_rank 1). */
export interface SeedBlockConfig {
  readonly arch: 'seed';
  readonly dModel: number;
  readonly dState: number;
}

/**
 * A hybrid model (Jamba, Bamba, Granite 4.0-H, Nemotron-H, Zamba2, Falcon-H1: model/families/):
 * each layer its own composition of Mamba, attention, MLP and MoE operations
 * (layers/hybrid/config.ts), every weight named by its full checkpoint key.
 */
export interface HybridConfig {
  readonly arch: 'hybrid';
  /** transformers' model_type. */
  readonly family: string;
  readonly dModel: number;
  readonly nLayer: number;
  readonly vocabSize: number;
  /** The final norm's. */
  readonly eps: number;
  readonly tieEmbeddings: boolean;
  /** The embedding and the final norm's weights; lm_head.weight when not tied. */
  readonly backbone: { readonly embedding: string; readonly finalNorm: string };
  /** The embedding output and the logits are multiplied by these (Granite's and Falcon-H1's µP multipliers; 1 elsewhere). */
  readonly embeddingScale: number;
  readonly logitsScale: number;
  readonly layers: readonly HybridLayerConfig[];
}

export type ModelConfig = Mamba1Config | Mamba2Config | HybridConfig | SeedBlockConfig;

/** A language model: token embedding, layers, final norm and lm_head over a vocabulary. */
export type LanguageModelConfig = Mamba1Config | Mamba2Config | HybridConfig;

/** A model whose every layer is one Mamba block: what the tfjs and WebGPU engines and the long-context runs take. */
export type MambaConfig = Mamba1Config | Mamba2Config;

/**
 * N of the model's scans (a hybrid's largest over its Mamba layers; 0 with none): what the
 * estimates of the scan analyses multiply by.
 */
export function stateSize(config: ModelConfig): number {
  if (config.arch !== 'hybrid') return config.dState;
  return Math.max(0, ...config.layers.map((l) => mambaOp(l)?.dState ?? 0));
}

/** The embedding output's and the logits' multipliers (a hybrid family's µP: Granite's, Falcon-H1's; 1 and 1 elsewhere). */
export function backboneScales(config: LanguageModelConfig): { readonly embedding: number; readonly logits: number } {
  return config.arch === 'hybrid' ? { embedding: config.embeddingScale, logits: config.logitsScale } : { embedding: 1, logits: 1 };
}

/** Channels of the model's widest scan (d_inner; a hybrid's largest over its Mamba layers, 0 with none): what the GPU scan's chunking divides. */
export function scanChannels(config: LanguageModelConfig): number {
  if (config.arch !== 'hybrid') return config.dInner;
  return Math.max(0, ...config.layers.map((l) => {
    const m = mambaOp(l);
    return !m ? 0 : m.kind === 'mamba1' ? m.dInner : m.nHeads * m.headDim;
  }));
}

/** The architecture, for people and dump metadata: mamba1, mamba2, seed, or a hybrid's family (jamba, zamba2, …). */
export function archName(config: ModelConfig): string {
  return config.arch === 'hybrid' ? config.family : config.arch;
}

/** The simplified block has no vocabulary: it maps hidden states to hidden states. */
export function isLanguageModelConfig(config: ModelConfig): config is LanguageModelConfig {
  return 'vocabSize' in config;
}

export const CONFIG_FILE = 'config.json';

export async function readConfig(files: FileStore): Promise<ModelConfig> {
  const src = await files.open(CONFIG_FILE);
  if (!src) throw new InputError(files.name, `has no ${CONFIG_FILE}`);
  return parseModelConfig(decodeUtf8(await src.read(0, src.size), src.name), src.name);
}

/** JSON.parse with transformers' {"__float__": "Infinity" | "-Infinity" | "NaN"} decoded. */
export function parseConfigJson(text: string, source: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, (_key, value: unknown) => {
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        const keys = Object.keys(value);
        const f = (value as { __float__?: unknown }).__float__;
        if (keys.length === 1 && typeof f === 'string') {
          const decoded = ({ Infinity: Infinity, '-Infinity': -Infinity, NaN: NaN } as Record<string, number>)[f];
          if (decoded === undefined) throw new InputError(source, `has an unknown {"__float__": ${JSON.stringify(f)}}`);
          return decoded;
        }
      }
      return value;
    });
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(source, 'is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InputError(source, 'is not a JSON object');
  return parsed as Record<string, unknown>;
}

export function parseModelConfig(text: string, source: string): ModelConfig {
  const obj = parseConfigJson(text, source);
  const f = new ConfigFields(obj, source);
  const modelType = obj.model_type;
  const family = typeof modelType === 'string' && Object.hasOwn(HYBRID_FAMILIES, modelType) ? HYBRID_FAMILIES[modelType] : undefined;
  if (family) return family(f, source);
  if (modelType === 'mamba') return mamba1FromTransformers(f);
  if (modelType === 'falcon_mamba') return { ...mamba1FromTransformers(f), dtBcNormEps: f.num('mixer_rms_eps', 1e-6) };
  if (modelType === 'mamba2') return mamba2FromTransformers(f, source);
  if (f.has('d_model') && f.has('n_layer')) return fromStateSpaces(f, source);
  if (obj.architecture === 'seed-simple' || modelType === 'seed-simple') return { arch: 'seed', dModel: f.int('d_model'), dState: f.int('d_state') };
  throw new InputError(source, `model_type ${JSON.stringify(modelType)} is not a Mamba config (expected "mamba", "falcon_mamba", "mamba2", a hybrid (${Object.keys(HYBRID_FAMILIES).map((k) => `"${k}"`).join(', ')}) or a state-spaces config with d_model and n_layer)`);
}

function mamba1FromTransformers(f: ConfigFields): Mamba1Config {
  const dModel = f.int('hidden_size');
  const dInner = f.int('intermediate_size', f.int('expand', 2) * dModel);
  return {
    arch: 'mamba1',
    dModel,
    nLayer: f.int('num_hidden_layers'),
    dInner,
    dState: f.int('state_size', 16),
    dConv: f.int('conv_kernel', 4),
    dtRank: f.intOrAuto('time_step_rank', Math.ceil(dModel / 16)),
    vocabSize: f.int('vocab_size'),
    eps: f.num('layer_norm_epsilon', 1e-5),
    convBias: f.bool('use_conv_bias', true),
    projBias: f.bool('use_bias', false),
    tieEmbeddings: f.bool('tie_word_embeddings', true),
  };
}

function mamba2FromTransformers(f: ConfigFields, source: string): Mamba2Config {
  const dModel = f.int('hidden_size');
  const nHeads = f.int('num_heads');
  const headDim = f.int('head_dim', 64);
  const nGroups = f.int('n_groups', 1);
  if (nHeads % nGroups !== 0) throw new InputError(source, `num_heads ${nHeads} is not a multiple of n_groups ${nGroups}`);
  return {
    arch: 'mamba2',
    dModel,
    nLayer: f.int('num_hidden_layers'),
    dInner: nHeads * headDim,
    nHeads,
    headDim,
    dState: f.int('state_size', 128),
    nGroups,
    normGroupSize: (nHeads * headDim) / nGroups,
    dConv: f.int('conv_kernel', 4),
    chunkSize: f.int('chunk_size', 256),
    vocabSize: f.int('vocab_size'),
    eps: f.num('layer_norm_epsilon', 1e-5),
    convBias: f.bool('use_conv_bias', true),
    projBias: f.bool('use_bias', false),
    tieEmbeddings: f.bool('tie_word_embeddings', true),
    timeStepLimit: timeStepLimit(f.raw('time_step_limit'), source),
  };
}

/**
 * mamba_ssm's fields that change the computation beyond a stack of Mamba blocks, each refused by
 * name: loading such a checkpoint as plain Mamba would run without its MLPs, LayerNorm biases or
 * attention layers and give wrong numbers with exit 0. Fields that only change training or
 * precision (residual_in_fp32, fused_add_norm, dt_min…) mean the same thing here and pass.
 */
function refuseUnsupportedStateSpaces(f: ConfigFields, ssm: ConfigFields, layer: unknown, source: string): void {
  const refuse = (field: string, value: unknown, what: string) => {
    throw new InputError(source, `${field} = ${JSON.stringify(value)} (${what}) is not supported yet: only plain Mamba blocks are; its results would be wrong`);
  };
  const dIntermediate = f.raw('d_intermediate');
  if (dIntermediate !== undefined && dIntermediate !== null && dIntermediate !== 0) refuse('d_intermediate', dIntermediate, 'an MLP in every block');
  if (f.raw('rms_norm') === false) refuse('rms_norm', false, 'LayerNorm with bias instead of RMSNorm');
  const attn = f.raw('attn_layer_idx');
  if (Array.isArray(attn) ? attn.length > 0 : attn !== undefined && attn !== null) refuse('attn_layer_idx', attn, 'attention layers');
  if (layer === 'Mamba2') {
    if (ssm.raw('rmsnorm') === false) refuse('ssm_cfg.rmsnorm', false, 'no gated RMSNorm before out_proj');
    if (ssm.raw('norm_before_gate') === true) refuse('ssm_cfg.norm_before_gate', true, 'the gated norm normalizes before the gate');
    if (ssm.raw('D_has_hdim') === true) refuse('ssm_cfg.D_has_hdim', true, 'D per channel instead of per head');
  }
}

/** mamba_ssm's MambaConfig: the vocabulary is padded to pad_vocab_size_multiple. */
function fromStateSpaces(f: ConfigFields, source: string): ModelConfig {
  const dModel = f.int('d_model');
  const ssm = f.sub('ssm_cfg');
  refuseUnsupportedStateSpaces(f, ssm, ssm.raw('layer') ?? 'Mamba1', source);
  const multiple = f.int('pad_vocab_size_multiple', 8);
  const vocabSize = Math.ceil(f.int('vocab_size') / multiple) * multiple;
  const layer = ssm.raw('layer') ?? 'Mamba1';
  const expand = ssm.int('expand', 2);
  const common = {
    dModel,
    nLayer: f.int('n_layer'),
    vocabSize,
    eps: f.num('norm_epsilon', 1e-5),
    dConv: ssm.int('d_conv', 4),
    convBias: ssm.bool('conv_bias', true),
    projBias: ssm.bool('bias', false),
    tieEmbeddings: f.bool('tie_embeddings', true),
  };
  if (layer === 'Mamba1') {
    return {
      arch: 'mamba1',
      ...common,
      dInner: expand * dModel,
      dState: ssm.int('d_state', 16),
      dtRank: ssm.intOrAuto('dt_rank', Math.ceil(dModel / 16)),
    };
  }
  if (layer === 'Mamba2') {
    const headDim = ssm.int('headdim', 64);
    const dInner = expand * dModel;
    if (dInner % headDim !== 0) throw new InputError(source, `d_inner ${dInner} is not a multiple of headdim ${headDim}`);
    const nHeads = dInner / headDim;
    const nGroups = ssm.int('ngroups', 1);
    if (nHeads % nGroups !== 0) throw new InputError(source, `${nHeads} heads are not a multiple of ngroups ${nGroups}`);
    return {
      arch: 'mamba2',
      ...common,
      dInner,
      nHeads,
      headDim,
      dState: ssm.int('d_state', 128),
      nGroups,
      normGroupSize: dInner / nGroups,
      chunkSize: ssm.int('chunk_size', 256),
      timeStepLimit: timeStepLimit(ssm.raw('dt_limit'), source),
    };
  }
  throw new InputError(source, `ssm_cfg.layer ${JSON.stringify(layer)} is not Mamba1 or Mamba2`);
}

/** Whose gated RMSNorm a Mamba-2 model with n_groups > 1 runs (Mamba2Config.normGroupSize). */
export const GATED_NORMS = ['mamba_ssm', 'transformers'] as const;
export type GatedNorm = (typeof GATED_NORMS)[number];

/**
 * The config with `norm`'s gated norm: per group (mamba_ssm, the default) or over all of d_inner
 * (transformers 5.17). Both are real semantics; a user compares the two runs. Other configs as they are.
 */
export function withGatedNorm<C extends ModelConfig>(config: C, norm: GatedNorm): C {
  if (config.arch !== 'mamba2') return config;
  return { ...config, normGroupSize: norm === 'transformers' ? config.dInner : config.dInner / config.nGroups };
}
