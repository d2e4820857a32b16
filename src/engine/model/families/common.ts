/**
 * What the hybrid families' configs share: transformers' layer-type names, and the builders of
 * each operation's description from the fields every family names its own way.
 */
import { InputError } from '../../errors';
import type { AttentionOp, Mamba2Op, MlpOp, NormSpec } from '../../layers/hybrid/config';
import type { ConfigFields } from '../configFields';

/** transformers' layer types, its legacy names mapped as remap_legacy_layer_types does ("mamba" → "linear_attention"). */
export type LayerType = 'linear_attention' | 'full_attention' | 'mlp' | 'moe' | 'hybrid';

const LEGACY: Readonly<Record<string, LayerType>> = { mamba: 'linear_attention', attention: 'full_attention' };

export function layerTypes(raw: unknown, field: string, allowed: readonly LayerType[], source: string): LayerType[] {
  if (!Array.isArray(raw) || raw.length === 0) throw new InputError(source, `"${field}" must be a non-empty list of layer types`);
  return raw.map((t, i) => {
    const type = typeof t === 'string' ? (LEGACY[t] ?? t) : t;
    if (!(allowed as readonly unknown[]).includes(type)) {
      throw new InputError(source, `"${field}"[${i}] is ${JSON.stringify(t)}: this build knows ${allowed.map((a) => `"${a}"`).join(', ')} here`);
    }
    return type as LayerType;
  });
}

export const norm = (key: string, eps: number): NormSpec => ({ key, eps });

export interface Mamba2Fields {
  readonly heads: number;
  readonly headDim: number;
  readonly dState: number;
  readonly groups: number;
  readonly dConv: number;
  readonly convBias: boolean;
  readonly projBias: boolean;
  readonly outProjBias?: boolean;
  readonly dtLimit: readonly [number, number];
  readonly gatedNorm?: Mamba2Op['gatedNorm'];
  readonly segmentScales?: Mamba2Op['segmentScales'];
  readonly inScale?: number;
  readonly outScale?: number;
}

export function mamba2Op(key: string, m: Mamba2Fields, source: string): Mamba2Op {
  if (m.heads % m.groups !== 0) throw new InputError(source, `${m.heads} Mamba heads are not a multiple of ${m.groups} groups`);
  return {
    kind: 'mamba2', key, nHeads: m.heads, headDim: m.headDim, dState: m.dState, nGroups: m.groups, dConv: m.dConv,
    convBias: m.convBias, projBias: m.projBias, outProjBias: m.outProjBias ?? m.projBias, dtLimit: m.dtLimit,
    gatedNorm: m.gatedNorm, segmentScales: m.segmentScales, inScale: m.inScale ?? 1, outScale: m.outScale ?? 1,
  };
}

export interface AttentionFields {
  readonly inDim: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly scale?: number;
  readonly rope?: AttentionOp['rope'];
  readonly keyScale?: number;
  readonly inScale?: number;
  readonly outScale?: number;
  readonly adapter?: AttentionOp['adapter'];
}

export function attentionOp(key: string, a: AttentionFields, source: string): AttentionOp {
  if (a.heads % a.kvHeads !== 0) throw new InputError(source, `${a.heads} attention heads are not a multiple of ${a.kvHeads} key/value heads`);
  return {
    kind: 'attention', key, inDim: a.inDim, heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim, scale: a.scale ?? a.headDim ** -0.5,
    keyScale: a.keyScale ?? 1, rope: a.rope, adapter: a.adapter, inScale: a.inScale ?? 1, outScale: a.outScale ?? 1,
  };
}

export function mlpOp(key: string, m: Omit<MlpOp, 'kind' | 'key' | 'gateScale' | 'downScale' | 'inScale' | 'outScale'> & Partial<Pick<MlpOp, 'gateScale' | 'downScale'>>): MlpOp {
  return { kind: 'mlp', key, gateScale: 1, downScale: 1, inScale: 1, outScale: 1, ...m };
}

/** RoPE from rope_parameters (transformers 5) or the older rope_theta; only the default rope type, others refused by name. */
export function ropeTheta(f: ConfigFields, source: string): number {
  const params = f.sub('rope_parameters');
  const type = params.raw('rope_type') ?? 'default';
  if (type !== 'default') throw new InputError(source, `rope_parameters.rope_type ${JSON.stringify(type)} is not supported yet (only "default")`);
  return params.has('rope_theta') ? params.num('rope_theta', 10000) : f.num('rope_theta', 10000);
}

/** hidden_act of an MLP: the activations these families use. */
export function activation(v: unknown, field: string, source: string): MlpOp['act'] {
  if (v === 'silu' || v === 'swish') return 'silu';
  if (v === 'gelu') return 'gelu';
  if (v === 'relu2') return 'relu2';
  throw new InputError(source, `"${field}" ${JSON.stringify(v)} is not supported yet (silu, gelu, relu2)`);
}
