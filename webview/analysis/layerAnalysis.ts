/**
 * Everything the views derive from one layer, computed on first use and kept while the layer is
 * in the panel's small cache. Missing inputs (a dump without z, no model for A) surface as an
 * Unavailable error whose message tells the user what to do, and the view shows that message.
 */
import type { TokenMetric } from '../../src/protocol';
import type { ChannelOrder } from '../state';
import { decayFor, type LayerRecord, type ModelContext } from '../inspection';
import { layerInputs, type LayerInputs } from './layerInputs';
import { columnStats, deltaPerChannel, forgetFactor, orderByDescending, siluMatrix, writeMagnitude } from './metrics';
import { StateScanner } from './stateScan';

/** Data a view needs is not there; the message says why and what to do next. */
export class Unavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Unavailable';
  }
}

export interface Matrix {
  /** Row-major [rows, cols]; rows are tokens for every metric. */
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

export const METRIC_LABELS: Record<TokenMetric, string> = {
  delta: 'Δ (step size)',
  gate: 'silu(z) (output gate)',
  forget: 'forget factor meanₙ exp(Δ·A)',
  write: 'write magnitude |Δ·u|·‖B‖',
};
export const METRIC_SYMBOL: Record<TokenMetric, string> = { delta: 'Δ', gate: 'silu(z)', forget: 'exp(ΔA)', write: '|Δu|‖B‖' };

export class LayerAnalysis {
  readonly layer: number;
  private readonly inputs: LayerInputs | null;
  private readonly why: string | null;
  private readonly cache = new Map<string, Promise<unknown>>();
  private scannerInstance: StateScanner | null = null;

  constructor(private readonly rec: LayerRecord, model: ModelContext | null) {
    this.layer = rec.layer;
    const { delta, u, B } = rec.tensors;
    if (model?.scans.length && model.scans[rec.layer] === undefined && model.layerLabels) {
      // A hybrid's attention or MLP layer: there is no scan to show, whatever was kept.
      this.inputs = null;
      this.why = `layer ${rec.layer} (${model.layerLabels[rec.layer]}) has no selective scan: Δ, the gates and the state exist in its Mamba layers`;
      return;
    }
    if (!delta || !u || !B) {
      this.inputs = null;
      this.why = `layer ${rec.layer} has no ${['delta', 'u', 'B'].filter((k) => !rec.tensors[k as 'delta']).join(', ')}: run the model, or dump these internals too`;
      return;
    }
    const { decay, why } = decayFor(model, rec);
    this.inputs = layerInputs(delta, u, B, decay);
    this.why = why;
  }

  /**
   * One metric as a tokens × columns matrix (columns: channels, or heads for Mamba-2's Δ).
   * Shared by every view and the summaries, so it is never cancelled half-way: a view that no
   * longer wants it ignores the result (the work is bounded by one layer and yields to the UI).
   */
  metric(m: TokenMetric): Promise<Matrix> {
    return this.cached(`metric:${m}`, () => this.compute(m));
  }

  /**
   * A metric for one pass over it (the layer summaries): the cached matrix when a view already
   * made it, else computed into `scratch` ([L, D] at least), which the caller reuses and which
   * the next call overwrites.
   */
  metricOnce(m: TokenMetric, scratch: Float32Array): Promise<Matrix> {
    return (this.cache.get(`metric:${m}`) as Promise<Matrix> | undefined) ?? this.compute(m, scratch);
  }

  private async compute(m: TokenMetric, scratch?: Float32Array): Promise<Matrix> {
    if (m === 'delta') {
      const d = this.rec.tensors.delta;
      if (!d) throw new Unavailable(this.inputs === null && this.why ? this.why : `layer ${this.layer} has no Δ (delta): run the model or dump it`);
      return { data: d.data, rows: d.shape[0], cols: d.shape[1] };
    }
    if (m === 'gate') {
      const z = this.rec.tensors.z;
      if (!z) throw new Unavailable(`layer ${this.layer} has no z: run the model or dump layers.${this.layer}.z`);
      return { data: siluMatrix(z.data, scratch?.subarray(0, z.data.length)), rows: z.shape[0], cols: z.shape[1] };
    }
    const x = this.requireInputs(m === 'forget');
    const out = scratch?.subarray(0, x.L * x.D);
    const data = m === 'forget' ? await forgetFactor(x, {}, out) : writeMagnitude(x, out);
    return { data, rows: x.L, cols: x.D };
  }

  /** Channel order for a metric's matrix; null = natural order. */
  order(order: ChannelOrder, m: TokenMetric): Promise<Int32Array | null> {
    if (order === 'index') return Promise.resolve(null);
    return this.cached(`order:${order}:${m}`, async () => {
      const shown = await this.metric(m);
      if (order === 'variance') return orderByDescending(columnStats(shown.data, shown.rows, shown.cols).variance);
      // mean Δ: per column of the shown matrix (Mamba-2 gates use each channel's head Δ).
      const delta = await this.metric('delta');
      const source = delta.cols === shown.cols ? delta.data : deltaPerChannel(this.requireInputs(false));
      return orderByDescending(columnStats(source, shown.rows, shown.cols).mean);
    });
  }

  /** Δ, forget factor, gate and write at one (token, channel) cell, for tooltips; null where unavailable. */
  cell(t: number, d: number): { delta: number | null; forget: number | null; gate: number | null; write: number | null } {
    const x = this.inputs;
    const z = this.rec.tensors.z;
    const D = x?.D ?? z?.shape[1] ?? 0;
    const gate = z ? z.data[t * D + d] / (1 + Math.exp(-z.data[t * D + d])) : null;
    if (!x) return { delta: null, forget: null, gate, write: null };
    const dt = x.delta[t * x.deltaCols + x.deltaCol[d]];
    let forget: number | null = null;
    if (x.A) {
      let s = 0;
      for (let n = 0; n < x.N; n++) s += Math.exp(dt * x.A[d * x.N + n]);
      forget = s / x.N;
    }
    let b2 = 0;
    for (let n = 0; n < x.N; n++) b2 += x.B[t * x.bCols + x.bOffset[d] + n] ** 2;
    return { delta: dt, forget, gate, write: Math.abs(dt * x.u[t * x.D + d]) * Math.sqrt(b2) };
  }

  /** The state recomputation of this layer (needs the model's A). */
  scanner(): StateScanner {
    if (!this.scannerInstance) this.scannerInstance = new StateScanner(this.requireInputs(true), this.rec.h0);
    return this.scannerInstance;
  }

  get channels(): number {
    return this.inputs?.D ?? this.rec.tensors.z?.shape[1] ?? 0;
  }

  get states(): number {
    return this.inputs?.N ?? 0;
  }

  get hasRecordedStates(): boolean {
    return !!this.rec.tensors.h && !!this.rec.hTokens;
  }

  /** h from the data itself (a dump's layers.i.h) at token t, [D, N], when it was recorded. */
  recordedState(t: number): Float32Array | null {
    const h = this.rec.tensors.h, at = this.rec.hTokens;
    if (!h || !at || h.shape.length !== 3) return null;
    const i = at.indexOf(t);
    if (i < 0) return null;
    const size = h.shape[1] * h.shape[2];
    return h.data.subarray(i * size, (i + 1) * size);
  }

  private requireInputs(needA: boolean): LayerInputs {
    if (!this.inputs) throw new Unavailable(this.why ?? `layer ${this.layer} lacks Δ, u or B`);
    if (needA && !this.inputs.A) throw new Unavailable(`The forget factor and states ${this.why}`);
    return this.inputs;
  }

  private cached<T>(key: string, make: () => Promise<T>): Promise<T> {
    let p = this.cache.get(key) as Promise<T> | undefined;
    if (!p) {
      p = make();
      this.cache.set(key, p);
      // A failure (or cancellation) is not remembered: the next request tries again.
      p.catch(() => this.cache.delete(key));
    }
    return p;
  }
}
