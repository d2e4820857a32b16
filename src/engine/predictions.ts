/**
 * Next-token predictions from logits [L, V]: softmax with the max subtracted, in float64. Used by
 * the CLI's summary and the panel's next-token view.
 */
import type { FloatTensor } from './tensor';

export interface Prediction {
  readonly id: number;
  readonly prob: number;
}

function rowStats(logits: FloatTensor, t: number): { row: FloatTensor['data']; max: number; sum: number } {
  const V = logits.shape[1];
  const row = logits.data.subarray(t * V, (t + 1) * V);
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(row[i] - max);
  return { row, max, sum };
}

/** The k most likely next tokens after position t, most likely first. */
export function topK(logits: FloatTensor, t: number, k: number): Prediction[] {
  const { row, max, sum } = rowStats(logits, t);
  const best: Prediction[] = [];
  for (let i = 0; i < row.length; i++) {
    if (best.length === k && row[i] <= row[best[k - 1].id]) continue;
    const p = { id: i, prob: 0 };
    let j = best.length < k ? best.length : k - 1;
    best[j] = p;
    while (j > 0 && row[best[j - 1].id] < row[i]) {
      best[j] = best[j - 1];
      best[--j] = p;
    }
  }
  return best.map(({ id }) => ({ id, prob: Math.exp(row[id] - max) / sum }));
}

/** Probability of token `id` after position t, and its rank (0 = most likely). */
export function probabilityOf(logits: FloatTensor, t: number, id: number): { prob: number; rank: number } {
  const { row, max, sum } = rowStats(logits, t);
  let rank = 0;
  for (let i = 0; i < row.length; i++) if (row[i] > row[id]) rank++;
  return { prob: Math.exp(row[id] - max) / sum, rank };
}

/** log p(i) for every token i after position t: row t's log-softmax. */
export function logProbabilities(logits: FloatTensor, t: number): Float64Array {
  const { row, max, sum } = rowStats(logits, t);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}

/** −log p(id) after position t: the next-token loss, from the log-sum-exp of row t. */
export function nextTokenLoss(logits: FloatTensor, t: number, id: number): number {
  const { row, max, sum } = rowStats(logits, t);
  return max + Math.log(sum) - row[id];
}

/**
 * Next-token predictions at every position without the [L, V] logits: row t holds the k most
 * likely ids after token t with their probabilities, and the probability and rank (0 = most
 * likely) of the token that actually follows (NaN and −1 after the last token).
 */
export interface Predictions {
  readonly k: number;
  readonly ids: Int32Array; // [L·k]
  readonly probs: Float32Array; // [L·k]
  readonly nextProb: Float32Array; // [L]
  readonly nextRank: Int32Array; // [L]
  /**
   * [L] log nextProb where the engine computed it as such (the native engine's top-k kernel): finite
   * where nextProb underflows fp32 (logits spread over more than ~103 nats), so a loss reads it first.
   */
  readonly nextLogProb?: Float32Array;
}

/** Predictions from logits already in memory (dumps); the tfjs forward computes them on the device. */
export function predictionsFromLogits(logits: FloatTensor, ids: ArrayLike<number>, k: number): Predictions {
  const L = logits.shape[0];
  const out = { k, ids: new Int32Array(L * k), probs: new Float32Array(L * k), nextProb: new Float32Array(L).fill(NaN), nextRank: new Int32Array(L).fill(-1) };
  for (let t = 0; t < L; t++) {
    topK(logits, t, k).forEach((p, j) => {
      out.ids[t * k + j] = p.id;
      out.probs[t * k + j] = p.prob;
    });
    if (t + 1 < ids.length) {
      const { prob, rank } = probabilityOf(logits, t, ids[t + 1]);
      out.nextProb[t] = prob;
      out.nextRank[t] = rank;
    }
  }
  return out;
}

/** The k predictions after token t, most likely first. */
export function topAt(p: Predictions, t: number): Prediction[] {
  return Array.from({ length: p.k }, (_, j) => ({ id: p.ids[t * p.k + j], prob: p.probs[t * p.k + j] }));
}
