/**
 * States h_t of one layer, recomputed in the webview from its Δ, u, B and the model's A,
 *   h_t = exp(Δ_t·A) ⊙ h_{t−1} + (Δ_t·u_t)·B_t,
 * computing only what the state view shows: ‖h_t‖ for every t (one pass), h_t at the selected
 * token, and one channel's [L, N] trace. Never the full L × D × N history: the pass keeps a
 * checkpoint every K tokens (a few MB at most), so h_t at any token costs at most K steps.
 * States are accumulated in float64, as the reference scan does. A long run's window starts from
 * the state its recompute carried in (`h0`, the state after the token before the window), not 0.
 */
import type { LayerInputs } from './layerInputs';
import { chunked, type ChunkOptions } from './metrics';

/** Memory the checkpoints may use. */
const CHECKPOINT_BYTES = 8 << 20;
const MIN_SPACING = 32;

export class StateScanner {
  private readonly A: Float32Array;
  readonly spacing: number;
  private checkpoints: Float64Array[] = [];
  private normsOverTime: Float32Array | null = null;

  /** `h0` [D, N]: the state before the first token (default 0). */
  constructor(private readonly x: LayerInputs, private readonly h0?: ArrayLike<number>) {
    if (h0 && h0.length !== x.D * x.N) throw new Error(`the initial state has ${h0.length} values, the layer ${x.D} channels × ${x.N} states`);
    if (!x.A) throw new Error('states need the model\'s A (A = −exp(A_log)): load the model');
    this.A = x.A;
    const stateBytes = x.D * x.N * 8;
    const maxCheckpoints = Math.max(1, Math.floor(CHECKPOINT_BYTES / stateBytes));
    this.spacing = Math.max(MIN_SPACING, Math.ceil(x.L / maxCheckpoints));
  }

  /**
   * The pass over all tokens: ‖h_t‖ (Frobenius over channels × states) and the checkpoints. With
   * `forget` [L, D], it also writes the forget factor meanₙ exp(Δ·A) from the same exponentials
   * (the values metrics.ts forgetFactor gives): a long run's chunk needs both, and the
   * exponentials are most of what either costs.
   */
  async norms(options: ChunkOptions = {}, forget?: Float32Array): Promise<Float32Array> {
    if (this.normsOverTime && !forget) return this.normsOverTime;
    if (forget && forget.length !== this.x.L * this.x.D) throw new RangeError(`the forget factor needs [${this.x.L}, ${this.x.D}], got ${forget.length} values`);
    const { D, L } = this.x;
    const h = this.initialState();
    const norms = new Float32Array(L);
    const checkpoints: Float64Array[] = [];
    await chunked(L, { rowsPerChunk: this.spacing, ...options }, (t0, t1) => {
      for (let t = t0; t < t1; t++) {
        if (t % this.spacing === 0) checkpoints.push(h.slice());
        this.step(h, t, 0, D, forget);
        let s = 0;
        for (let i = 0; i < h.length; i++) s += h[i] * h[i];
        norms[t] = Math.sqrt(s);
      }
    });
    this.checkpoints = checkpoints;
    this.normsOverTime = norms;
    return norms;
  }

  /** h_t [D, N] after token t. */
  async stateAt(t: number, options: ChunkOptions = {}): Promise<Float32Array> {
    if (!Number.isInteger(t) || t < 0 || t >= this.x.L) throw new RangeError(`token ${t} is outside a ${this.x.L}-token sample`);
    await this.norms(options);
    const c = Math.floor(t / this.spacing);
    const h = this.checkpoints[c].slice();
    for (let k = c * this.spacing; k <= t; k++) this.step(h, k, 0, this.x.D);
    return Float32Array.from(h);
  }

  /** Channel d's states over time, [L, N]. */
  channelTrace(d: number): Float32Array {
    const { L, N, D } = this.x;
    if (!Number.isInteger(d) || d < 0 || d >= D) throw new RangeError(`channel ${d} is outside ${D} channels`);
    const h = this.initialState();
    const out = new Float32Array(L * N);
    for (let t = 0; t < L; t++) {
      this.step(h, t, d, d + 1);
      for (let n = 0; n < N; n++) out[t * N + n] = h[d * N + n];
    }
    return out;
  }

  private initialState(): Float64Array {
    return this.h0 ? Float64Array.from(this.h0) : new Float64Array(this.x.D * this.x.N);
  }

  /** One scan step for channels [d0, d1) of h; `forget` gets row t of the forget factor. */
  private step(h: Float64Array, t: number, d0: number, d1: number, forget?: Float32Array): void {
    const { N, delta, deltaCols, deltaCol, u, B, bCols, bOffset, D } = this.x;
    const A = this.A;
    for (let d = d0; d < d1; d++) {
      const dt = delta[t * deltaCols + deltaCol[d]];
      const du = dt * u[t * D + d];
      const b = t * bCols + bOffset[d];
      let kept = 0;
      for (let n = 0, i = d * N; n < N; n++, i++) {
        const e = Math.exp(dt * A[i]);
        kept += e;
        h[i] = e * h[i] + du * B[b + n];
      }
      if (forget) forget[t * D + d] = kept / N;
    }
  }
}
