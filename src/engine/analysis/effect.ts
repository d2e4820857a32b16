/**
 * The effect of an intervention on the outputs (issue 16): the clean run against the intervened
 * one, position by position — the KL divergence KL(p_clean ‖ p_intervened) of the next-token
 * distributions, the change in next-token loss, and the probability and logit of a chosen token.
 */
import { logProbabilities } from '../predictions';
import type { FloatTensor } from '../tensor';

export interface Effect {
  /** [L]: KL(p_clean ‖ p_intervened) at each position, in nats. */
  readonly kl: Float64Array;
  /** [L − 1]: loss of the token that follows, intervened minus clean. */
  readonly dLoss: Float64Array;
  /** The first position whose distribution moved (KL > 1e-12), or null. */
  readonly firstChanged: number | null;
  /** With a target token: its probability in each run, and its logit change, [L] each. */
  readonly target?: { readonly id: number; readonly clean: Float64Array; readonly intervened: Float64Array; readonly dLogit: Float64Array };
}

export function interventionEffect(clean: FloatTensor, intervened: FloatTensor, ids: ArrayLike<number>, target?: number): Effect {
  const [L, V] = clean.shape;
  const kl = new Float64Array(L);
  const dLoss = new Float64Array(Math.max(0, L - 1));
  const probs = target === undefined ? undefined : { clean: new Float64Array(L), intervened: new Float64Array(L), dLogit: new Float64Array(L) };
  let firstChanged: number | null = null;
  for (let t = 0; t < L; t++) {
    const p = logProbabilities(clean, t), q = logProbabilities(intervened, t);
    let d = 0;
    for (let i = 0; i < V; i++) d += Math.exp(p[i]) * (p[i] - q[i]);
    kl[t] = Math.max(0, d);
    if (firstChanged === null && kl[t] > 1e-12) firstChanged = t;
    if (t + 1 < L) dLoss[t] = p[ids[t + 1]] - q[ids[t + 1]];
    if (probs && target !== undefined) {
      probs.clean[t] = Math.exp(p[target]);
      probs.intervened[t] = Math.exp(q[target]);
      probs.dLogit[t] = intervened.data[t * V + target] - clean.data[t * V + target];
    }
  }
  return { kl, dLoss, firstChanged, ...(probs && target !== undefined ? { target: { id: target, ...probs } } : {}) };
}
