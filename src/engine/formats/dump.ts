/**
 * mamba-dump/1, the project's interchange format: a safetensors file with token axis first
 * (layout "LD", batch dropped) and these keys —
 *   input_ids [L] int32 · logits [L,V] (hf_logits in dumps written by transformers)
 *   layers.i.{hidden_in, z, u, delta, B, C, y, out, hidden_out} · layers.i.h [T,…] + h_tokens [T]
 *   layers.i.hidden_attention [L,L]
 *   logit lens (ForwardOptions.logitLens): layers.i.{lens_ids, lens_probs} [L,k] · layers.i.{lens_next_prob, lens_next_rank} [L]
 *   hybrids: layers.i.{ssm_out, attn_out, mlp_out} [L,H] · layers.i.{moe_experts, moe_weights} [L,k]
 * and metadata: format, layout, model, arch (mamba1, mamba2 or a hybrid's family), dtype, tokens
 * (JSON list of vocabulary pieces), hook_names (JSON: TransformerLens's and MambaLens's names of
 * the tensors, hookNames.ts).
 */
import { InputError } from '../errors';
import { INTERNAL_NAMES, type ForwardResult } from '../internals';
import type { Predictions } from '../predictions';
import type { Tensor } from '../tensor';
import { hookNames } from './hookNames';
import type { NamedTensor, TensorStore } from './safetensors';

export const DUMP_FORMAT = 'mamba-dump/1';

export function dumpKey(layer: number, name: string): string {
  return `layers.${layer}.${name}`;
}

/** "layers.3.delta" → {layer: 3, name: "delta"}; top-level keys → {layer: null, name}. */
export function parseDumpKey(key: string): { layer: number | null; name: string } {
  const m = /^layers\.(\d+)\.(.+)$/.exec(key);
  return m ? { layer: Number(m[1]), name: m[2] } : { layer: null, name: key };
}

export interface DumpContents {
  readonly inputIds: Int32Array;
  /** Vocabulary pieces, one per token. */
  readonly pieces: readonly string[];
  readonly result: ForwardResult;
  /** Extra per-layer tensors (hidden_attention), keyed by layer then name. */
  readonly extras?: ReadonlyMap<number, Readonly<Record<string, Tensor>>>;
  readonly metadata: Readonly<Record<string, string>>;
}

export function buildDump(d: DumpContents): { entries: NamedTensor[]; metadata: Record<string, string> } {
  const entries: NamedTensor[] = [{ name: 'input_ids', tensor: { shape: [d.inputIds.length], data: d.inputIds } }];
  if (d.result.logits) entries.push({ name: 'logits', tensor: d.result.logits });
  for (const layer of d.result.layers) {
    for (const name of INTERNAL_NAMES) {
      const t = layer.tensors[name];
      if (t) entries.push({ name: dumpKey(layer.layer, name), tensor: t });
    }
    if (layer.hTokens && layer.tensors.h) {
      entries.push({ name: dumpKey(layer.layer, 'h_tokens'), tensor: { shape: [layer.hTokens.length], data: layer.hTokens } });
    }
    if (layer.lens) entries.push(...lensEntries(layer.layer, layer.lens));
    for (const [name, t] of Object.entries(d.extras?.get(layer.layer) ?? {})) entries.push({ name: dumpKey(layer.layer, name), tensor: t });
  }
  const hooks = hookNames(d.result.layers.map((l) => ({
    layer: l.layer,
    names: INTERNAL_NAMES.filter((name) => l.tensors[name] && (name !== 'h' || l.hTokens)),
    hTokens: l.hTokens,
    hybrid: !!(l.tensors.ssm_out ?? l.tensors.attn_out ?? l.tensors.mlp_out),
  })), dumpKey, !!d.result.logits);
  return { entries, metadata: { format: DUMP_FORMAT, layout: 'LD', ...d.metadata, tokens: JSON.stringify(d.pieces), hook_names: JSON.stringify(hooks) } };
}

/** A layer's logit lens as dump tensors: the top k per position, and the probability and rank of the token that follows. */
function lensEntries(layer: number, p: Predictions): NamedTensor[] {
  const L = p.nextRank.length;
  return [
    { name: dumpKey(layer, 'lens_ids'), tensor: { shape: [L, p.k], data: p.ids } },
    { name: dumpKey(layer, 'lens_probs'), tensor: { shape: [L, p.k], data: p.probs } },
    { name: dumpKey(layer, 'lens_next_prob'), tensor: { shape: [L], data: p.nextProb } },
    { name: dumpKey(layer, 'lens_next_rank'), tensor: { shape: [L], data: p.nextRank } },
  ];
}

/** The layers present in a dump, in order. */
export function dumpLayers(store: TensorStore): number[] {
  const layers = new Set<number>();
  for (const key of store.names()) {
    const { layer } = parseDumpKey(key);
    if (layer !== null) layers.add(layer);
  }
  return [...layers].sort((a, b) => a - b);
}

/** The token pieces recorded in a dump's metadata, or null when it has none. */
export function dumpTokens(store: TensorStore): string[] | null {
  const raw = store.metadata.tokens;
  if (raw === undefined) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InputError(store.name, 'metadata "tokens" is not valid JSON');
  }
  if (!Array.isArray(parsed) || !parsed.every((t) => typeof t === 'string')) throw new InputError(store.name, 'metadata "tokens" is not a list of strings');
  return parsed;
}
