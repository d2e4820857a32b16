/**
 * The tokens × channels picture of where two tensors differ, for the panel's heatmap. Axis 0 is
 * the token axis, axis 1 the channel; further axes (the N states of h) are reduced by max, so a
 * cell is the worst error of that token and channel.
 */
import { shapeString, sizeOf, type Tensor } from '../tensor';

export interface ErrorMap {
  readonly tokens: number;
  readonly channels: number;
  /** |a − b| per cell, row-major [tokens, channels]; NaN where either value is non-finite. */
  readonly data: Float32Array;
  /** Largest finite cell (the colour scale's top). */
  readonly max: number;
}

export function errorMap(a: Tensor, b: Tensor): ErrorMap {
  if (a.shape.length !== b.shape.length || a.shape.some((d, k) => d !== b.shape[k])) {
    throw new Error(`errorMap: shapes ${shapeString(a.shape)} and ${shapeString(b.shape)} differ`);
  }
  const tokens = a.shape.length ? a.shape[0] : 1;
  const channels = a.shape.length > 1 ? a.shape[1] : 1;
  const inner = sizeOf(a.shape.slice(2));
  const data = new Float32Array(tokens * channels);
  let max = 0;
  for (let cell = 0; cell < data.length; cell++) {
    let worst = 0;
    for (let i = cell * inner, end = i + inner; i < end; i++) {
      const x = Number(a.data[i]);
      const y = Number(b.data[i]);
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        worst = NaN;
        break;
      }
      worst = Math.max(worst, Math.abs(x - y));
    }
    data[cell] = worst;
    if (worst > max) max = worst;
  }
  return { tokens, channels, data, max };
}
