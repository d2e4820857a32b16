/**
 * Per-layer summaries: mean Δ, the share of near-reset steps (forget factor < τ), and each
 * metric's per-token mean, which the token strip and the editor decorations colour by.
 */
import { TOKEN_METRICS, type TokenMetric } from '../../src/protocol';
import { fractionBelow, meanOf, rowMeans } from './metrics';
import { Unavailable, type LayerAnalysis } from './layerAnalysis';

export interface LayerSummary {
  readonly layer: number;
  readonly meanDelta: number;
  /** Share of (token, channel) steps with meanₙ exp(Δ·A) < τ; null without the model's A. */
  readonly resetFraction: number | null;
  readonly threshold: number;
  /** Mean over channels (and states) at each token; null where the metric is unavailable. */
  readonly perToken: Readonly<Record<TokenMetric, Float32Array | null>>;
}

/** `scratch` holds each metric's matrix in turn (one buffer for every layer); its size is checked by the caller. */
export async function summarizeLayer(a: LayerAnalysis, threshold: number, scratch: Float32Array): Promise<LayerSummary> {
  const perToken = {} as Record<TokenMetric, Float32Array | null>;
  let meanDelta = NaN;
  let resetFraction: number | null = null;
  for (const m of TOKEN_METRICS) {
    try {
      const x = await a.metricOnce(m, scratch);
      perToken[m] = rowMeans(x.data, x.rows, x.cols);
      if (m === 'delta') meanDelta = meanOf(x.data);
      if (m === 'forget') resetFraction = fractionBelow(x.data, threshold);
    } catch (e) {
      if (!(e instanceof Unavailable)) throw e;
      perToken[m] = null;
    }
  }
  return { layer: a.layer, meanDelta, resetFraction, threshold, perToken };
}
