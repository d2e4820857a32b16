/**
 * Dump keys in the order the forward pass produces them, so "the first tensor that diverges"
 * or "the first NaN" means the earliest point in the computation, not the first in the file:
 * top-level inputs, then layer by layer hidden_in, z, u, delta, B, C, y, h, out, hidden_out
 * (other per-layer tensors after those), then logits.
 */
import { parseDumpKey } from '../formats/dump';
import { INTERNAL_NAMES } from '../internals';

/** INTERNAL_NAMES is already in forward order. */
const LAYER_ORDER: readonly string[] = [...INTERNAL_NAMES, 'h_tokens'];
/** Top-level keys that come out of the network rather than go into it. */
const OUTPUTS: readonly string[] = ['logits', 'hf_logits'];

function rank(key: string): [number, number, number, string] {
  const { layer, name } = parseDumpKey(key);
  if (layer !== null) {
    const i = LAYER_ORDER.indexOf(name);
    return [1, layer, i < 0 ? LAYER_ORDER.length : i, name];
  }
  return OUTPUTS.includes(name) ? [2, 0, OUTPUTS.indexOf(name), name] : [0, 0, 0, name];
}

export function sortForward(keys: readonly string[]): string[] {
  const ranked = keys.map((k) => ({ k, r: rank(k) }));
  ranked.sort((x, y) => x.r[0] - y.r[0] || x.r[1] - y.r[1] || x.r[2] - y.r[2] || (x.r[3] < y.r[3] ? -1 : x.r[3] > y.r[3] ? 1 : 0));
  return ranked.map((x) => x.k);
}
