/**
 * What a forward pass records per layer. The names are the dump format's (mamba-dump/1) and are
 * used unchanged by the engine, the protocol, the views and the tests: one name, one meaning.
 *
 * Mamba-1 and the simplified block (L tokens, D channels, N states, H hidden):
 *   hidden_in [L,H] residual stream entering the layer (before its RMSNorm)
 *   z [L,D] gate branch (before SiLU) · u [L,D] scan input (after conv + SiLU)
 *   delta [L,D] Δ after softplus · B, C [L,N] · y [L,D] scan output incl. D·u, before the gate
 *   out [L,H] mixer output (out_proj) · hidden_out [L,H] residual stream after the layer
 *   h [T,D,N] state after token t for t in h_tokens [T] · conv_state [T,K−1,D] the conv's context
 *   after token t (the K − 1 pre-conv inputs ending at t, oldest first; the float64 reference
 *   records it with h: a patch-state's source)
 * Mamba-2 (heads Hd, head dim P, groups G; D = Hd·P):
 *   z, u, y [L,D] as above (u is x after conv + SiLU) · delta [L,Hd] per head · B, C [L,G·N]
 *   h [T,Hd,P,N] · conv_state [T,K−1,D+2·G·N] (the conv covers x | B | C) · out, hidden_out, hidden_in as above.
 * The seed block (no residual) records u = x_in, z = res and out = y ⊙ silu(z).
 * Hybrid layers (layers/hybrid/) record hidden_in, hidden_out, the Mamba internals above when
 * they have a Mamba operation, and each path's output before its residual add (and before the
 * family's multipliers around it): ssm_out [L,H] the Mamba operation's, attn_out [L,H] the
 * attention's (and, when ForwardOptions.attentionPattern asks, attn_pattern [L, heads, L] its
 * softmax weights, query token first: row (t, head) over the positions ≤ t), mlp_out [L,H] the feed-forward branch's (MLP, or MoE plus a shared MLP);
 * moe_experts, moe_weights [L,k] the experts each token was routed to and their weights; out [L,H]
 * the mixer branch's sum as added (Falcon-H1: Mamba and attention after their multipliers).
 * Each layer kind (layers/) declares which of these it records and their per-token shapes.
 */
import { layerKinds } from './layers';
import { keptPerLayer } from './layers/kind';
import type { ModelConfig } from './model/config';
import type { LayerEdit } from './interventions';
import type { Predictions } from './predictions';
import type { FloatArray, Tensor } from './tensor';

export const INTERNAL_NAMES = ['hidden_in', 'z', 'u', 'delta', 'B', 'C', 'y', 'h', 'conv_state', 'ssm_out', 'attn_pattern', 'attn_out', 'out', 'moe_experts', 'moe_weights', 'mlp_out', 'hidden_out'] as const;
export type InternalName = (typeof INTERNAL_NAMES)[number];

export interface LayerInternals<F extends FloatArray = FloatArray> {
  readonly layer: number;
  readonly tensors: Partial<Record<InternalName, Tensor<F>>>;
  /** Token positions of the states in tensors.h. */
  readonly hTokens?: Int32Array;
  /** With ForwardOptions.logitLens: the stream leaving this layer through the final norm and lm_head, as next-token predictions. */
  readonly lens?: Predictions;
}

export interface ForwardOptions {
  /** Layers whose internals are kept; default all. Others are computed but not kept. */
  readonly layers?: readonly number[];
  /** Token positions whose states are captured; negative counts from the end. */
  readonly statesAt?: readonly number[];
  /**
   * Internals downloaded for the kept layers (default: all). A viewer that draws only some of
   * them keeps the rest off the heap: at mamba-130m × 2048 tokens each [L, H] tensor is 6 MB per layer.
   */
  readonly keep?: readonly InternalName[];
  /**
   * With k, the tfjs forward returns `predictions` (top-k next tokens at every position, and the
   * probability and rank of the token that follows) computed on the device, instead of the
   * [L, V] logits (412 MB at mamba-130m × 2048 tokens).
   */
  readonly predictions?: number;
  /** Polled between layers; throw CancelledError to stop. */
  readonly checkCancelled?: () => void;
  /**
   * Attention layers also record attn_pattern [L, heads, L]. Off by default: O(L²) per head,
   * and not in the per-token estimates (attentionPatternValues).
   */
  readonly attentionPattern?: boolean;
  /**
   * Interventions, per layer index, positions resolved (interventions.ts: layerEdits). Every
   * engine applies them as docs/INTERVENTIONS.md defines them, or refuses the run in one line.
   */
  readonly edits?: ReadonlyMap<number, LayerEdit>;
  /**
   * With k, each kept layer also gets `lens`: its output stream (hidden_out) through the final
   * RMSNorm and the lm_head (and the logits multiplier), reduced to the top-k and the next
   * token's probability and rank at every position, as `predictions` is for the last layer.
   */
  readonly logitLens?: number;
}

/** Values the attention patterns of a run hold: heads × L² for each kept layer's attention (Zamba2's shared block's is not recorded). */
export function attentionPatternValues(config: ModelConfig, tokens: number, layers?: readonly number[]): number {
  if (config.arch !== 'hybrid') return 0;
  return config.layers
    .filter((l) => !layers || layers.includes(l.index))
    .reduce((sum, l) => sum + l.branches.flatMap((b) => b.ops).reduce((s, op) => s + (op.kind === 'attention' ? op.heads * tokens * tokens : 0), 0), 0);
}

export interface ForwardResult<F extends FloatArray = FloatArray> {
  /** [L, V]; absent for the seed block and when `predictions` were asked for instead. */
  readonly logits?: Tensor<F>;
  readonly predictions?: Predictions;
  readonly layers: readonly LayerInternals<F>[];
}

/** Resolves negative positions, drops duplicates and checks the range. */
export function resolvePositions(positions: readonly number[], length: number): Int32Array {
  const out = new Set<number>();
  for (const p of positions) {
    const q = p < 0 ? length + p : p;
    if (!Number.isInteger(q) || q < 0 || q >= length) {
      throw new RangeError(`token position ${p} is outside a ${length}-token sample`);
    }
    out.add(q);
  }
  return Int32Array.from([...out].sort((a, b) => a - b));
}

/**
 * slots[t] = the indices k with at[k] = t, so a scan writes the state after token t to every row
 * that asked for it: the rows come out in the order of `at`, sorted or not, repeats included.
 * A position outside the sample would never be written (a silent zero state), so it is refused.
 */
export function stateSlots(at: ArrayLike<number>, length: number): (number[] | undefined)[] {
  const slots: (number[] | undefined)[] = new Array(length);
  for (let k = 0; k < at.length; k++) {
    const t = at[k];
    if (!Number.isInteger(t) || t < 0 || t >= length) throw new RangeError(`state position ${t} is outside a ${length}-token sample`);
    (slots[t] ??= []).push(k);
  }
  return slots;
}

/** The internals `keep` asks for, all when unset (the reference forward computes all, then keeps these). */
export function keptOnly<T>(tensors: Partial<Record<InternalName, T>>, keep?: readonly InternalName[]): Partial<Record<InternalName, T>> {
  return keep ? Object.fromEntries(Object.entries(tensors).filter(([name]) => keep.includes(name as InternalName))) : tensors;
}

export function wantsLayer(options: ForwardOptions, layer: number): boolean {
  return !options.layers || options.layers.includes(layer);
}

/** What a run keeps, for estimating its memory before it starts. */
export interface KeptRun {
  readonly tokens: number;
  /** Layers whose internals are kept. */
  readonly layers: number;
  /** Internals kept per layer (default all). */
  readonly keep?: readonly InternalName[];
  /** Token positions whose states are captured. */
  readonly states: number;
}

/**
 * Values the kept internals of a run hold, from the per-token shapes the model's layer kind
 * declares: checked before a run starts, so a run that cannot fit is refused instead of exhausting memory.
 */
export function keptValues(config: ModelConfig, run: KeptRun): number {
  // A hybrid's layers keep different internals: the largest bounds any choice of `run.layers` of them.
  const perLayer = Math.max(...layerKinds(config).map((k) => keptPerLayer(k.internals, run.tokens, run.states, run.keep ?? INTERNAL_NAMES)));
  return run.layers * perLayer;
}
