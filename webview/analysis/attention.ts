/**
 * The implicit attention of a layer as the panel needs it: computed on demand from the data's
 * Δ, B, C and the loaded model's A (src/engine/analysis/attention.ts does the maths; the channel
 * mean runs in a worker), one layer at a time, and refused above a token limit because the cost
 * is O(L²·D·N).
 * A dump that already holds layers.i.hidden_attention (inspect --attention) is read instead when
 * no model is loaded. A hybrid's attention layer shows its own pattern (attn_pattern), averaged
 * over its heads or one head; the rollout mixes the two kinds layer by layer.
 */
import { attentionRollout, hiddenAttentionChannel } from '../../src/engine/analysis/attention';
import type { Tensor } from '../../src/engine/tensor';
import { decayFor } from '../inspection';
import { meanAttention } from './attentionClient';
import type { PanelData } from '../panelData';
import { Unavailable } from './layerAnalysis';

/** Above this many tokens one layer's [L, L] map takes seconds to minutes in the panel. */
export const ATTENTION_MAX_TOKENS = 1024;
/** Rollout needs every layer's map plus O(L³) products per layer. */
export const ROLLOUT_MAX_TOKENS = 512;

export type AttentionMode = 'mean' | 'channel' | 'rollout';

/** Head of channel d: Mamba-2's Δ has one column per head, every channel of a head shares α. */
function attentionChannel(deltaCols: number, channels: number, d: number): number {
  return deltaCols === channels ? d : Math.floor(d / (channels / deltaCols));
}

export class AttentionCache {
  private readonly maps = new Map<string, Tensor<Float64Array>>();

  constructor(private readonly data: PanelData) {}

  /**
   * The [L, L] map to show; `channel` is only read in 'channel' mode. `stale` stops a computation
   * the view no longer needs (the selection moved on, or Cancel); `progress` hears of each step.
   */
  async map(layer: number, mode: AttentionMode, channel: number | null, stale: () => boolean = () => false, progress?: (what: string, done: number, total: number) => void): Promise<{ tensor: Tensor<Float64Array>; what: string }> {
    const L = this.data.inspection.length;
    const pattern = this.data.record(layer)?.tensors.attn_pattern;
    if (pattern && mode === 'channel') {
      // An attention layer: the selected channel picks a head ([ and ] step through them).
      const heads = pattern.shape[1];
      const h = (channel ?? 0) % heads;
      return { tensor: headPattern(pattern, h), what: `head ${h} of ${heads}` };
    }
    if (L > ATTENTION_MAX_TOKENS) {
      throw new Unavailable(`Implicit attention is computed in the panel only up to ${ATTENTION_MAX_TOKENS} tokens (limit ATTENTION_MAX_TOKENS); this sample has ${L}. Inspect a shorter selection, or write it with “mamba-scope inspect --attention”.`);
    }
    if (mode === 'rollout') {
      if (L > ROLLOUT_MAX_TOKENS) throw new Unavailable(`Attention rollout is computed only up to ${ROLLOUT_MAX_TOKENS} tokens (limit ROLLOUT_MAX_TOKENS); this sample has ${L}. Pick “channel mean”.`);
      const layers = this.data.layerNumbers.filter((l) => l <= layer).sort((a, b) => a - b);
      const missing = Array.from({ length: layer + 1 }, (_, i) => i).filter((l) => !layers.includes(l));
      if (missing.length) throw new Unavailable(`Rollout up to layer ${layer} needs every layer before it; this data lacks layer${missing.length > 1 ? 's' : ''} ${missing.join(', ')}.`);
      const maps = [];
      for (const l of layers) maps.push(await this.mean(l, stale, progress));
      return { tensor: attentionRollout(maps)[layers.length - 1], what: `rollout over layers 0–${layer}` };
    }
    if (mode === 'channel') {
      if (channel === null) throw new Unavailable('Select a channel first (click a cell of the Δ heatmap, or press ] ) to see its attention, or pick “channel mean”.');
      const x = this.inputs(layer);
      const c = attentionChannel(x.delta.shape[1], x.channels, channel);
      const key = `${layer}:c${c}`;
      let t = this.maps.get(key);
      if (!t) {
        await yieldToUi();
        t = hiddenAttentionChannel(x.delta, x.B, x.C, x.A, c, x.groups);
        this.maps.set(key, t);
      }
      return { tensor: t, what: x.delta.shape[1] === x.channels ? `channel ${c}` : `head ${c} (channel ${channel})` };
    }
    return { tensor: await this.mean(layer, stale, progress), what: pattern ? 'mean over heads' : 'mean over channels' };
  }

  private async mean(layer: number, stale: () => boolean, progress?: (what: string, done: number, total: number) => void): Promise<Tensor<Float64Array>> {
    const key = `${layer}:mean`;
    let t = this.maps.get(key);
    if (t) return t;
    const rec = this.data.record(layer);
    const pattern = rec?.tensors.attn_pattern;
    if (pattern) {
      // An attention layer's own weights, averaged over its heads: the same [L, L] as the implicit attention.
      t = headPattern(pattern, null);
      this.maps.set(key, t);
      return t;
    }
    const { why } = rec ? decayFor(this.data.model, rec) : { why: null };
    if (why && this.data.inspection.index.has(`layers.${layer}.hidden_attention`)) {
      // No usable model: the dump's own map (inspect --attention / the fixtures) is the answer.
      const stored = await this.data.inspection.tensor(`layers.${layer}.hidden_attention`);
      t = { shape: stored.shape, data: Float64Array.from(stored.data) };
    } else {
      const x = this.inputs(layer);
      t = await meanAttention({ delta: x.delta, B: x.B, C: x.C, A: x.A, groups: x.groups }, stale, (done, total) => progress?.(`layer ${layer}`, done, total));
    }
    this.maps.set(key, t);
    return t;
  }

  private inputs(layer: number) {
    const rec = this.data.record(layer);
    if (!rec) throw new Unavailable(`Layer ${layer} has no internals in this data: pick another layer.`);
    const { delta, B, C } = rec.tensors;
    const lacking = (['delta', 'B', 'C'] as const).filter((k) => !rec.tensors[k]);
    if (lacking.length) throw new Unavailable(`Implicit attention of layer ${layer} needs Δ, B and C; this data has no ${lacking.join(', ')}.`);
    const { decay, why } = decayFor(this.data.model, rec);
    if (!decay) throw new Unavailable(`Implicit attention ${why}.`);
    return { delta: delta!, B: B!, C: C!, A: decay.A, groups: decay.groups, channels: rec.tensors.u?.shape[1] ?? delta!.shape[1] };
  }
}

/** One head's [L, L] of an attention pattern [L, heads, L], or (head null) the mean over heads. */
function headPattern(p: Tensor<Float32Array>, head: number | null): Tensor<Float64Array> {
  const [L, heads] = p.shape;
  const out = new Float64Array(L * L);
  for (let t = 0; t < L; t++) {
    for (let h = head ?? 0; h < (head === null ? heads : head + 1); h++) {
      for (let s = 0; s <= t; s++) out[t * L + s] += p.data[t * heads * L + h * L + s];
    }
  }
  if (head === null) for (let i = 0; i < out.length; i++) out[i] /= heads;
  return { shape: [L, L], data: out };
}

/** Lets the frame show “busy” before a computation that holds the thread for a while. */
function yieldToUi(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}
