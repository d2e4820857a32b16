/**
 * One layer's scan inputs in the shape every webview analysis reads: per channel d the column of
 * Δ it uses, the offset of its B group and its row of A. Mamba-1 has Δ and A per channel and one
 * B per token; Mamba-2 has Δ and a scalar A per head (channel d is in head ⌊d / P⌋) and B per
 * group. Mapping both to the same per-channel view keeps each formula written once.
 */
import type { Tensor } from '../../src/engine/tensor';

export interface LayerInputs {
  /** Tokens. */
  readonly L: number;
  /** Channels (d_inner). */
  readonly D: number;
  /** States per channel. */
  readonly N: number;
  /** Δ [L, deltaCols]: deltaCols = D (Mamba-1) or heads (Mamba-2). */
  readonly delta: Float32Array;
  readonly deltaCols: number;
  /** u [L, D]. */
  readonly u: Float32Array;
  /** B [L, bCols], bCols = groups·N. */
  readonly B: Float32Array;
  readonly bCols: number;
  /** Column of Δ for channel d. */
  readonly deltaCol: Int32Array;
  /** Offset of channel d's B group inside a B row. */
  readonly bOffset: Int32Array;
  /** A = −exp(A_log) expanded to [D, N] (Mamba-2's per-head scalar repeated), or null when no model is loaded. */
  readonly A: Float32Array | null;
}

export interface DecayParams {
  /** −exp(A_log): [D, N] for Mamba-1, [heads] for Mamba-2. */
  readonly A: Tensor<Float32Array>;
  /** B/C groups (Mamba-2), 1 otherwise. */
  readonly groups: number;
}

export function layerInputs(delta: Tensor<Float32Array>, u: Tensor<Float32Array>, B: Tensor<Float32Array>, decay: DecayParams | null, groupsIfNoModel = 1): LayerInputs {
  const [L, D] = u.shape;
  const deltaCols = delta.shape[1];
  const bCols = B.shape[1];
  if (delta.shape[0] !== L || B.shape[0] !== L) throw new Error(`delta, u and B disagree on the token count (${delta.shape[0]}, ${L}, ${B.shape[0]})`);
  if (D % deltaCols !== 0) throw new Error(`u has ${D} channels, not a multiple of Δ's ${deltaCols} columns`);
  const groups = decay?.groups ?? groupsIfNoModel;
  if (bCols % groups !== 0) throw new Error(`B has ${bCols} columns, not a multiple of ${groups} groups`);
  const N = bCols / groups;
  const P = D / deltaCols;
  const headsPerGroup = deltaCols / groups;
  const deltaCol = new Int32Array(D);
  const bOffset = new Int32Array(D);
  for (let d = 0; d < D; d++) {
    const head = Math.floor(d / P);
    deltaCol[d] = head;
    bOffset[d] = deltaCols === D ? 0 : Math.floor(head / headsPerGroup) * N;
  }
  return { L, D, N, delta: delta.data, deltaCols, u: u.data, B: B.data, bCols, deltaCol, bOffset, A: decay ? expandA(decay.A, D, N, deltaCol) : null };
}

function expandA(A: Tensor<Float32Array>, D: number, N: number, deltaCol: Int32Array): Float32Array {
  if (A.shape.length === 2) {
    if (A.shape[0] !== D || A.shape[1] !== N) throw new Error(`A is [${A.shape.join(', ')}] but the layer has ${D} channels × ${N} states`);
    return A.data;
  }
  const out = new Float32Array(D * N);
  for (let d = 0; d < D; d++) out.fill(A.data[deltaCol[d]], d * N, (d + 1) * N);
  return out;
}
