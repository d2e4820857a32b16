/**
 * The window of a long run that the panel shows at full resolution: tokens [start, end) of the
 * sample, at most FULL_RESOLUTION_TOKENS wide and never narrower than one tile block. Every move
 * (drag, keys, a token chosen in the editor, a zoom of the tile heatmap) goes through these
 * functions, so a window is always whole and inside the sample.
 */
import { FULL_RESOLUTION_TOKENS } from '../../src/protocol';

export type TokenWindow = readonly [start: number, end: number];

/** The narrowest window: one 64-token tile block (or the whole sample when shorter). */
export const MIN_WINDOW_TOKENS = 64;

/** `w` made whole: its width within [MIN_WINDOW_TOKENS, FULL_RESOLUTION_TOKENS] (and the sample), then shifted inside [0, L). */
export function clampWindow(w: TokenWindow, L: number): TokenWindow {
  const width = Math.min(L, FULL_RESOLUTION_TOKENS, Math.max(MIN_WINDOW_TOKENS, Math.round(w[1] - w[0])));
  const start = Math.min(Math.max(0, Math.round(w[0])), L - width);
  return [start, start + width];
}

/** `w` moved by `tokens` (negative: back), its width kept. */
export function shiftWindow(w: TokenWindow, tokens: number, L: number): TokenWindow {
  return clampWindow([w[0] + tokens, w[1] + tokens], L);
}

/** A window of `width` tokens centred on token `t`. */
export function windowAround(t: number, width: number, L: number): TokenWindow {
  const start = Math.round(t - width / 2);
  return clampWindow([start, start + width], L);
}

/** `w` scaled about its centre (factor < 1: narrower). */
export function scaleWindow(w: TokenWindow, factor: number, L: number): TokenWindow {
  return windowAround((w[0] + w[1]) / 2, (w[1] - w[0]) * factor, L);
}

/** `w` unchanged when token `t` is inside it, else the window of the same width centred on `t`. */
export function windowShowing(w: TokenWindow, t: number, L: number): TokenWindow {
  return t >= w[0] && t < w[1] ? w : windowAround(t, w[1] - w[0], L);
}

export function sameWindow(a: TokenWindow | null, b: TokenWindow | null): boolean {
  return a === b || (!!a && !!b && a[0] === b[0] && a[1] === b[1]);
}
