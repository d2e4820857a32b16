/** Next-token predictions from logits [L, V]: softmax with the max subtracted, in float64. */
import type { Tensor } from '../../src/engine/tensor';

export interface Prediction {
  readonly id: number;
  readonly prob: number;
}

function rowStats(logits: Tensor<Float32Array>, t: number): { row: Float32Array; max: number; sum: number } {
  const V = logits.shape[1];
  const row = logits.data.subarray(t * V, (t + 1) * V);
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(row[i] - max);
  return { row, max, sum };
}

/** The k most likely next tokens after position t, most likely first. */
export function topK(logits: Tensor<Float32Array>, t: number, k: number): Prediction[] {
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
export function probabilityOf(logits: Tensor<Float32Array>, t: number, id: number): { prob: number; rank: number } {
  const { row, max, sum } = rowStats(logits, t);
  let rank = 0;
  for (let i = 0; i < row.length; i++) if (row[i] > row[id]) rank++;
  return { prob: Math.exp(row[id] - max) / sum, rank };
}

/** The most likely next token and its probability at every position. */
export function top1(logits: Tensor<Float32Array>): { ids: Int32Array; probs: Float32Array } {
  const L = logits.shape[0];
  const ids = new Int32Array(L), probs = new Float32Array(L);
  for (let t = 0; t < L; t++) {
    const [best] = topK(logits, t, 1);
    ids[t] = best.id;
    probs[t] = best.prob;
  }
  return { ids, probs };
}
