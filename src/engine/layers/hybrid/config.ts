/**
 * A hybrid model's decoder layer, as its family's config.json describes it (model/families/):
 * a list of residual branches, each an RMSNorm and one or more operations summed (Falcon-H1 runs
 * attention and Mamba-2 side by side), every weight named by its full checkpoint key. The
 * operations are the kinds of mamba_ssm's mixers and transformers' sub-modules: the Mamba-1 and
 * Mamba-2 mixers, attention, the MLP and the mixture of experts; each has its own module here.
 */
import type { Mamba1MixerShape } from '../mamba1/reference';
import type { Mamba2MixerShape } from '../mamba2/reference';

/** An RMSNorm with a learned weight at `key` (over the last axis, `eps` inside the square root). */
export interface NormSpec {
  readonly key: string;
  readonly eps: number;
}

/** What every operation shares: where its weights are, and the µP scalars around it (1 when the family has none). */
interface OpBase {
  /** Key prefix of its weights: "model.layers.3.mamba.". */
  readonly key: string;
  /** The branch's normed input is multiplied by this before the operation (Falcon-H1's attention_in / ssm_in multipliers). */
  readonly inScale: number;
  /** Its output is multiplied by this before the branch sums its operations (Falcon-H1's attention_out / ssm_out multipliers). */
  readonly outScale: number;
}

/** Mamba-1 (Jamba): mamba_ssm's Mamba mixer, with learned RMSNorms on the low-rank dt, on B and on C after x_proj (`dtBcNormEps`). */
export interface Mamba1Op extends OpBase, Mamba1MixerShape {
  readonly kind: 'mamba1';
  readonly convBias: boolean;
  readonly projBias: boolean;
}

/** Mamba-2 with the gated-norm variant and the µP multipliers of its family (mamba2/reference.ts). */
export interface Mamba2Op extends OpBase, Mamba2MixerShape {
  readonly kind: 'mamba2';
  readonly convBias: boolean;
  readonly projBias: boolean;
  readonly outProjBias: boolean;
}

/** A low-rank adapter added to a projection's output: x · A₀ᵀ · A₁ᵀ, A₀ [rank, in], A₁ [out, rank]; `index`: which of the shared block's adapters. */
export interface AdapterSpec {
  readonly index: number;
  readonly rank: number;
}

export interface RopeSpec {
  /** Leading dimensions of each head that rotate (partial RoPE rotates fewer than the head's). */
  readonly dims: number;
  readonly theta: number;
}

export interface AttentionOp extends OpBase {
  readonly kind: 'attention';
  /** Width of its input: d_model, or Zamba2's concat of the stream and the embeddings. */
  readonly inDim: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Multiplies q·k (head_dim^−½, Granite's attention_multiplier, Zamba2's (head_dim/2)^−½). */
  readonly scale: number;
  /** Falcon-H1's key_multiplier: k is multiplied by it before RoPE. */
  readonly keyScale: number;
  readonly rope?: RopeSpec;
  /** Zamba2's per-use LoRA adapters on q, k and v: `linear_{q,k,v}_adapter_list.<index>.{0,1}.weight`. */
  readonly adapter?: AdapterSpec;
}

export type Activation = 'silu' | 'gelu' | 'relu2';

export interface MlpOp extends OpBase {
  readonly kind: 'mlp';
  readonly intermediate: number;
  readonly act: Activation;
  /**
   * Where the weights are: gate_proj, up_proj and down_proj ('separate'); one input projection
   * holding [gate; up] and an output one ('fused': Granite's input_linear/output_linear, Zamba2's
   * gate_up_proj/down_proj); or no gate, up_proj → act → down_proj ('ungated': Nemotron-H's relu²).
   */
  readonly layout: 'separate' | 'fused' | 'ungated';
  /** For 'fused': the names of the two projections. */
  readonly fusedNames?: readonly [string, string];
  /** Falcon-H1's mlp_multipliers: the gate projection's output, and the down projection's. */
  readonly gateScale: number;
  readonly downScale: number;
  /** Zamba2's per-use LoRA adapter on the fused input projection: `gate_up_proj_adapter_list.<index>.{0,1}.weight`. */
  readonly adapter?: AdapterSpec;
}

export interface MoeOp extends OpBase {
  readonly kind: 'moe';
  readonly experts: number;
  readonly topK: number;
  readonly intermediate: number;
  /**
   * Jamba: softmax over every expert, then the top k, not renormalised. Granite: the top k of the
   * router's logits, then a softmax over those k.
   */
  readonly routing: 'softmax-topk' | 'topk-softmax';
  /** Jamba stores each expert's gate/up/down_proj; Granite one [E, 2I, H] input_linear ([gate; up]) and one [E, H, I] output_linear. */
  readonly layout: 'per-expert' | 'fused';
  readonly routerKey: string;
}

export type Op = Mamba1Op | Mamba2Op | AttentionOp | MlpOp | MoeOp;

/**
 * Zamba2's shared transformer block: attention and an MLP on concat(stream, embeddings), with no
 * residual of its own; this layer's `linear` maps its output into the stream before the Mamba
 * branch's norm (the residual is the stream itself).
 */
export interface SharedBlockSpec {
  readonly inputNorm: NormSpec;
  readonly attention: AttentionOp;
  readonly ffNorm: NormSpec;
  readonly mlp: MlpOp;
  readonly linearKey: string;
}

export interface Branch {
  readonly norm: NormSpec;
  /** Summed. */
  readonly ops: readonly Op[];
  /** The branch's sum is multiplied by this before the residual add (Granite's residual_multiplier). */
  readonly scale: number;
  readonly shared?: SharedBlockSpec;
}

export interface HybridLayerConfig {
  readonly arch: 'hybrid-layer';
  /** transformers' model_type. */
  readonly family: string;
  readonly index: number;
  readonly dModel: number;
  readonly branches: readonly Branch[];
}

/** The operations of a layer, its shared block's included, each once. */
export function layerOps(c: HybridLayerConfig): Op[] {
  return c.branches.flatMap((b) => [...(b.shared ? [b.shared.attention, b.shared.mlp] : []), ...b.ops]);
}

/** The layer's Mamba operation, if it has one: the one the analyses of the scan read. */
export function mambaOp(c: HybridLayerConfig): Mamba1Op | Mamba2Op | undefined {
  return layerOps(c).find((op): op is Mamba1Op | Mamba2Op => op.kind === 'mamba1' || op.kind === 'mamba2');
}

/** The widest per-token activation an operation holds (its in_proj's, its MLP's or its attention's q, k and v), for memory estimates. */
export function opWidth(op: Op): number {
  switch (op.kind) {
    case 'mamba1': return 2 * op.dInner;
    case 'mamba2': return 2 * op.nHeads * op.headDim + 2 * op.nGroups * op.dState + op.nHeads;
    case 'attention': return (op.heads + 2 * op.kvHeads) * op.headDim;
    case 'mlp': return 2 * op.intermediate;
    case 'moe': return 2 * op.intermediate + op.experts;
  }
}

/** What a layer is, for people: "Mamba-2 + MLP", "attention + MoE". */
export function layerLabel(c: HybridLayerConfig): string {
  const names: Record<Op['kind'], string> = { mamba1: 'Mamba-1', mamba2: 'Mamba-2', attention: 'attention', mlp: 'MLP', moe: 'MoE' };
  return c.branches.map((b) => (b.shared ? 'shared transformer → ' : '') + b.ops.map((op) => names[op.kind]).join(' ∥ ')).join(' + ');
}
