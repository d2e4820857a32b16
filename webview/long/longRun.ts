/**
 * What the panel keeps of a long run (more than FULL_RESOLUTION_TOKENS tokens), as the overview
 * and the window reads it: per layer and position the summaries (mean Δ, the near-reset
 * fraction, ‖h_t‖), the next-token loss and top-k at every position, per-block tiles of Δ, the
 * gate and the forget factor, and the recompute of a window's full internals from the nearest
 * checkpoint. O(L × layers + L/64 × channels × layers), never O(L × channels).
 */
import type { LayerCarry } from '../../src/engine/layers/kind';
import type { Predictions } from '../../src/engine/predictions';
import type { RunParams } from '../../src/protocol';

/** The per-position series of a layer the overview draws. */
export const POSITION_SERIES = ['meanDelta', 'resetFraction', 'stateNorm'] as const;
export type PositionSeries = (typeof POSITION_SERIES)[number];

/** What the tiles summarize per block and column. */
export const TILE_METRICS = ['delta', 'gate', 'forget'] as const;
export type TileMetric = (typeof TILE_METRICS)[number];
export const TILE_STATS = ['mean', 'max'] as const;
export type TileStat = (typeof TILE_STATS)[number];

/** One layer's tiles of a metric: [blocks, columns] row-major (columns: Δ's, or the channels for the gate and forget factor). */
export interface Tiles {
  readonly data: Float32Array;
  readonly blocks: number;
  readonly columns: number;
}

export interface LongRun {
  /** The host's run: its ids, tokens and offsets for the whole sample. */
  readonly params: RunParams;
  readonly tokens: number;
  /** Tokens per tile block (the last block may be shorter). */
  readonly blockSize: number;
  /** τ the near-reset fraction was counted at (meanₙ exp(Δ·A) < τ). */
  readonly threshold: number;
  /** Layers with summaries, ascending: every layer with a selective scan. */
  readonly layers: readonly number[];
  /** −log p(token t + 1) after token t, [L − 1]. */
  readonly nll: Float64Array;
  /** The top-k next tokens at every position. */
  readonly predictions: Predictions | null;
  /** Bytes the run keeps (summaries, tiles, checkpoints, predictions): what the panel's memory account shows. */
  readonly keptBytes: number;
  /** A layer's series over all L positions; null for a layer without a scan. */
  series(layer: number, s: PositionSeries): Float32Array | null;
  tiles(layer: number, m: TileMetric, stat: TileStat): Tiles | null;
  /** The checkpoint a window's recompute starts from: the last at or before `start`. */
  checkpointBefore(start: number): number;
  /** Each layer's carry entering token `start` (a checkpoint's position); undefined at token 0 (zero states). */
  carriesAt(start: number): readonly LayerCarry[] | undefined;
}
