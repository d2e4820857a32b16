/** Next-token predictions from logits: softmax of one position's row, the k most likely ids. */
import type { FloatTensor } from './tensor';

export interface Prediction {
  readonly id: number;
  readonly p: number;
}

export function topPredictions(logits: FloatTensor, position: number, k: number): Prediction[] {
  const V = logits.shape[1];
  const row = logits.data.subarray(position * V, (position + 1) * V);
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  // A partial selection is enough: k is small next to V.
  const best: Prediction[] = [];
  for (let id = 0; id < V; id++) {
    const p = Math.exp(row[id] - max) / sum;
    if (best.length < k || p > best[best.length - 1].p) {
      best.push({ id, p });
      best.sort((a, b) => b.p - a.p);
      if (best.length > k) best.pop();
    }
  }
  return best;
}
