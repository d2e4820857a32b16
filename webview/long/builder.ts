/**
 * Builds what a long run keeps (LongRun) chunk by chunk in the panel: each chunk's internals are
 * reduced at once, through the same per-layer analysis the views use (LayerAnalysis: Δ, the gate
 * silu(z), the forget factor, ‖h_t‖ rescanned from the chunk's entering state), to the
 * per-position series and the per-block tiles, then let go. What stays is O(L × layers) series,
 * O(L / 64 × channels × layers) tiles, the top-k at every position and the checkpoints (each
 * layer's carry at every chunk start).
 */
import type { LayerCarry } from '../../src/engine/layers/kind';
import type { Predictions } from '../../src/engine/predictions';
import type { RunParams } from '../../src/protocol';
import { LayerAnalysis, type Matrix } from '../analysis/layerAnalysis';
import { fractionBelow, rowMeans } from '../analysis/metrics';
import type { LayerRecord, ModelContext } from '../inspection';
import type { LongRun, PositionSeries, TileMetric, TileStat, Tiles } from './longRun';

/** Tokens per tile block: a chunk is a whole number of blocks. */
export const TILE_BLOCK = 64;

interface LayerStore {
  readonly series: Record<PositionSeries, Float32Array>;
  /** Per metric: mean and max tiles, [blocks, columns]. */
  tiles: Partial<Record<TileMetric, Record<TileStat, Tiles>>>;
}

/** Bytes a long run keeps, estimated before it starts: series, tiles, predictions, nll, checkpoints. */
export function longRunBytes(p: { tokens: number; layers: number; channels: number; deltaColumns: number; carryValues: number; chunkLength: number; k: number }): number {
  const blocks = Math.ceil(p.tokens / TILE_BLOCK);
  const series = 3 * p.tokens * p.layers * 4;
  const tiles = 2 * blocks * (p.deltaColumns + 2 * p.channels) * p.layers * 4;
  const predictions = p.tokens * (p.k * 8 + 8);
  const checkpoints = Math.ceil(p.tokens / p.chunkLength) * p.carryValues * 8;
  return series + tiles + predictions + p.tokens * 8 + checkpoints;
}

export class LongRunBuilder {
  private readonly layers = new Map<number, LayerStore>();
  private readonly nll: Float64Array;
  private readonly predictions: Predictions;
  /** Chunk start → each layer's carry entering it (none for token 0: zero states). */
  private readonly checkpoints = new Map<number, readonly LayerCarry[]>();

  constructor(private readonly params: RunParams, private readonly model: ModelContext, private readonly threshold: number, private readonly k: number) {
    const L = this.tokens;
    this.nll = new Float64Array(Math.max(0, L - 1));
    this.predictions = { k, ids: new Int32Array(L * k), probs: new Float32Array(L * k), nextProb: new Float32Array(L).fill(NaN), nextRank: new Int32Array(L).fill(-1) };
  }

  get tokens(): number {
    return this.params.ids.byteLength / Int32Array.BYTES_PER_ELEMENT;
  }

  /** The carries entering the chunk that starts at `start`: the window recompute starts there. */
  checkpoint(start: number, carries: readonly LayerCarry[]): void {
    this.checkpoints.set(start, carries);
  }

  /**
   * One chunk at `start`: its layers' internals (each with the state entering the chunk, h0) and
   * its predictions (rows of the chunk; nextProb of its last row is the sample's next token's).
   */
  async addChunk(start: number, records: readonly LayerRecord[], predictions: Predictions): Promise<void> {
    const T = predictions.nextProb.length;
    const p = this.predictions, k = this.k;
    p.ids.set(predictions.ids.subarray(0, T * k), start * k);
    p.probs.set(predictions.probs.subarray(0, T * k), start * k);
    p.nextProb.set(predictions.nextProb.subarray(0, T), start);
    p.nextRank.set(predictions.nextRank.subarray(0, T), start);
    // The log-probability where the engine gives it: −log of an fp32 probability is infinite past ~103 nats.
    const logProb = predictions.nextLogProb;
    for (let r = 0; r < T && start + r < this.nll.length; r++) this.nll[start + r] = logProb ? -logProb[r] : -Math.log(predictions.nextProb[r]);
    for (const rec of records) {
      if (this.model.scans[rec.layer] === undefined) continue;
      const a = new LayerAnalysis(rec, this.model);
      const store = this.store(rec.layer);
      const delta = await a.metric('delta');
      const gate = await a.metric('gate');
      // The forget factor from the state pass's own exponentials: one pass for ‖h_t‖ and it.
      const forget = { data: new Float32Array(delta.rows * a.channels), rows: delta.rows, cols: a.channels };
      store.series.stateNorm.set(await a.scanner().norms({}, forget.data), start);
      store.series.meanDelta.set(rowMeans(delta.data, delta.rows, delta.cols), start);
      for (let t = 0; t < forget.rows; t++) store.series.resetFraction[start + t] = fractionBelow(forget.data.subarray(t * forget.cols, (t + 1) * forget.cols), this.threshold);
      this.addTiles(store, 'delta', delta, start);
      this.addTiles(store, 'gate', gate, start);
      this.addTiles(store, 'forget', forget, start);
    }
  }

  finish(): LongRun {
    const layers = [...this.layers.keys()].sort((a, b) => a - b);
    const starts = [...this.checkpoints.keys(), 0].sort((a, b) => a - b);
    const stores = this.layers;
    const checkpoints = this.checkpoints;
    let keptBytes = this.nll.byteLength + this.predictions.ids.byteLength + this.predictions.probs.byteLength + 8 * this.tokens;
    for (const s of stores.values()) {
      for (const v of Object.values(s.series)) keptBytes += v.byteLength;
      for (const m of Object.values(s.tiles)) for (const t of Object.values(m!)) keptBytes += t.data.byteLength;
    }
    for (const c of checkpoints.values()) for (const l of c) keptBytes += l.h.byteLength + (l.conv?.data.byteLength ?? 0);
    return {
      params: this.params,
      tokens: this.tokens,
      blockSize: TILE_BLOCK,
      threshold: this.threshold,
      layers,
      nll: this.nll,
      predictions: this.predictions,
      keptBytes,
      series: (layer, s) => stores.get(layer)?.series[s] ?? null,
      tiles: (layer, m, stat) => stores.get(layer)?.tiles[m]?.[stat] ?? null,
      checkpointBefore: (start) => starts.filter((s) => s <= start).pop() ?? 0,
      carriesAt: (start) => checkpoints.get(start),
    };
  }

  private store(layer: number): LayerStore {
    let s = this.layers.get(layer);
    if (!s) {
      const L = this.tokens;
      s = { series: { meanDelta: new Float32Array(L).fill(NaN), resetFraction: new Float32Array(L).fill(NaN), stateNorm: new Float32Array(L).fill(NaN) }, tiles: {} };
      this.layers.set(layer, s);
    }
    return s;
  }

  /** The chunk's blocks of `m` (tokens × columns) into the layer's mean and max tiles. */
  private addTiles(store: LayerStore, metric: TileMetric, m: Matrix, start: number): void {
    const C = m.cols;
    const blocks = Math.ceil(this.tokens / TILE_BLOCK);
    const tiles = (store.tiles[metric] ??= { mean: { data: new Float32Array(blocks * C).fill(NaN), blocks, columns: C }, max: { data: new Float32Array(blocks * C).fill(NaN), blocks, columns: C } });
    for (let t0 = 0; t0 < m.rows; t0 += TILE_BLOCK) {
      const b = (start + t0) / TILE_BLOCK;
      const t1 = Math.min(m.rows, t0 + TILE_BLOCK);
      for (let c = 0; c < C; c++) {
        let sum = 0, max = -Infinity;
        for (let t = t0; t < t1; t++) {
          const v = m.data[t * C + c];
          sum += v;
          if (v > max) max = v;
        }
        tiles.mean.data[b * C + c] = sum / (t1 - t0);
        tiles.max.data[b * C + c] = max;
      }
    }
  }
}
