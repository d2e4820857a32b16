/**
 * The names TransformerLens and MambaLens give the tensors a dump holds, so code written against
 * their caches finds them (issue 16, interop). Only names of the same tensor are given:
 *   - TransformerLens's TransformerBridge for Mamba (model_bridge/supported_architectures/mamba.py,
 *     mamba2.py): blocks.{ℓ}.hook_resid_pre / hook_resid_post (the block's input and output),
 *     blocks.{ℓ}.hook_mixer_out = blocks.{ℓ}.mixer.hook_out (alias mixer.hook_ssm_out): the
 *     mixer's output, after out_proj.
 *   - MambaLens's HookedMamba (Phylliida/MambaLens, Mamba-1): hook_embed, blocks.{ℓ}.hook_skip (z,
 *     before SiLU), hook_ssm_input (u: the conv after SiLU), hook_delta, hook_B, hook_C,
 *     hook_ssm_output (y, with D·u), hook_h.{t} (the state after token t), hook_out_proj,
 *     hook_logits. On Mamba-2 they name the same roles, in our shapes (Δ per head, B and C per group).
 * Their other hooks (hook_in_proj, hook_conv, hook_delta_1/2, hook_A_bar, hook_B_bar, MambaLens's
 * hook_y before D·u, hook_normalized_input) are tensors a dump does not hold, so they have no alias.
 */
import type { InternalName } from '../internals';

/** The Mamba scan's internals, by MambaLens's names (a pure layer's or a hybrid's Mamba operation's). */
const SCAN_HOOKS: Partial<Record<InternalName, readonly string[]>> = {
  hidden_in: ['hook_resid_pre'],
  hidden_out: ['hook_resid_post'],
  z: ['hook_skip'],
  u: ['hook_ssm_input'],
  delta: ['hook_delta'],
  B: ['hook_B'],
  C: ['hook_C'],
  y: ['hook_ssm_output'],
};

/** A pure Mamba layer's mixer output (a hybrid's `out` sums its branch's paths, which neither library names so). */
const MIXER_OUT_HOOKS = ['hook_out_proj', 'hook_mixer_out', 'mixer.hook_out', 'mixer.hook_ssm_out'];

/** What one kept layer of a dump holds, for its hook names. */
export interface HookedLayer {
  readonly layer: number;
  /** The internals it holds. */
  readonly names: readonly InternalName[];
  /** The tokens of the rows of its h. */
  readonly hTokens?: ArrayLike<number>;
  /** Whether it is a hybrid layer (its `out` is a branch's sum). */
  readonly hybrid: boolean;
}

/**
 * Hook name → the dump key holding that tensor, or `key[row]` for one row along its first axis
 * (MambaLens's per-position hook_h.{t}: row k of layers.ℓ.h, whose h_tokens[k] is t).
 */
export function hookNames(layers: readonly HookedLayer[], key: (layer: number, name: string) => string, hasLogits: boolean): Record<string, string> {
  const aliases: Record<string, string> = {};
  if (hasLogits) aliases.hook_logits = 'logits';
  for (const l of layers) {
    const block = `blocks.${l.layer}`;
    for (const name of l.names) {
      for (const hook of [...(SCAN_HOOKS[name] ?? []), ...(name === 'out' && !l.hybrid ? MIXER_OUT_HOOKS : [])]) aliases[`${block}.${hook}`] = key(l.layer, name);
    }
    // A hybrid's layer 0 reads the embedding times its family's multiplier: not MambaLens's hook_embed.
    if (l.layer === 0 && !l.hybrid && l.names.includes('hidden_in')) aliases.hook_embed = key(0, 'hidden_in');
    const tokens = l.names.includes('h') ? l.hTokens ?? [] : [];
    for (let row = 0; row < tokens.length; row++) aliases[`${block}.hook_h.${tokens[row]}`] = `${key(l.layer, 'h')}[${row}]`;
  }
  return aliases;
}
