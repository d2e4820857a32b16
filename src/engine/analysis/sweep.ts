/**
 * The ablation sweep (issue 16): each token's write ablated in each layer in turn
 * (ablate-write, ../interventions.ts), and the effect on the outputs after it — the tokens ×
 * layers map of which writes the model uses. Each cell is one intervened float64 forward against
 * the clean one: the mean KL of the next-token distributions from the token on, and the mean
 * change in next-token loss.
 */
import type { LanguageModel } from '../model/graph';
import { layerEdits } from '../interventions';
import { referenceForward } from '../reference/forward';
import { interventionEffect } from './effect';
import { scanOf } from '../layers/kind';

export interface SweepOptions {
  /** Layers swept (default all). */
  readonly layers?: readonly number[];
  /** Tokens swept (default all). */
  readonly tokens?: readonly number[];
  /** After each cell: cells done. */
  readonly onProgress?: (done: number) => void;
}

export interface AblationSweep {
  readonly layers: readonly number[];
  readonly tokens: readonly number[];
  /** [layers, tokens]: mean KL(p_clean ‖ p_ablated) over the positions from the token on, nats. */
  readonly meanKl: Float64Array;
  /** [layers, tokens]: mean change of the next-token loss over the positions from the token on. */
  readonly meanDLoss: Float64Array;
}

export function ablationSweep(model: LanguageModel<'float64'>, ids: ArrayLike<number>, options: SweepOptions = {}): AblationSweep {
  const L = ids.length;
  const layers = options.layers ?? model.layers.map((l) => l.index);
  const tokens = options.tokens ?? Array.from({ length: L }, (_, t) => t);
  const clean = referenceForward(model, ids, { layers: [] });
  const shape = { layers: model.layers.length, deltaColumns: scanOf(model.layers[0]).deltaWidth, dModel: model.config.dModel };
  const meanKl = new Float64Array(layers.length * tokens.length);
  const meanDLoss = new Float64Array(layers.length * tokens.length);
  let done = 0;
  layers.forEach((layer, i) => {
    tokens.forEach((s, j) => {
      const edits = layerEdits([{ kind: 'ablate-write', layer, tokens: [s] }], L, shape);
      const run = referenceForward(model, ids, { layers: [], edits });
      const e = interventionEffect(clean.logits!, run.logits!, ids);
      const mean = (x: Float64Array, from: number) => (x.length > from ? x.subarray(from).reduce((a, b) => a + b, 0) / (x.length - from) : 0);
      meanKl[i * tokens.length + j] = mean(e.kl, s);
      meanDLoss[i * tokens.length + j] = mean(e.dLoss, s);
      options.onProgress?.(++done);
    });
  });
  return { layers, tokens, meanKl, meanDLoss };
}
