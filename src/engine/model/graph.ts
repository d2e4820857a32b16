/**
 * A loaded model is a graph: the backbone (token embedding, final RMSNorm, lm_head) around a list
 * of layers, each bound to its kind (layers/). The float64 reference, the tfjs forward and the
 * analyses all walk `layers`. The simplified block is a one-layer graph with no backbone.
 */
import type { ModelLayer } from '../layers/kind';
import type { LanguageModelConfig, ModelConfig } from './config';
import type { Param, Precision } from './params';

export interface LoadedModel<P extends Precision = Precision> {
  readonly config: ModelConfig;
  readonly layers: readonly ModelLayer<P>[];
  readonly embedding?: Param<P>;
  readonly normF?: Param<P>;
  readonly lmHead?: Param<P>;
}

export interface LanguageModel<P extends Precision = Precision> extends LoadedModel<P> {
  readonly config: LanguageModelConfig;
  /** [V, H]. */
  readonly embedding: Param<P>;
  readonly normF: Param<P>;
  /** [V, H]: the embedding itself when tied. */
  readonly lmHead: Param<P>;
}

export function isLanguageModel<P extends Precision>(model: LoadedModel<P>): model is LanguageModel<P> {
  return model.embedding !== undefined;
}
