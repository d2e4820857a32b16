/**
 * What the editor decorations and their hover need of the data shown: each metric's per-token
 * mean for every layer, and the top-1 next token. A long run's window sends the window's tokens
 * only (TokenSummary.window), and a new summary each time the window moves.
 */
import { TOKEN_METRICS, toTensorMessage, type TokenSummary } from '../src/protocol';
import type { PanelData } from './panelData';

export function tokenSummary(data: PanelData, runId: string): TokenSummary {
  const layers = data.layerNumbers;
  const ins = data.inspection;
  const L = ins.length;
  const perToken: TokenSummary['perToken'] = {};
  for (const m of TOKEN_METRICS) {
    const rows = layers.map((layer) => data.summary(layer)?.perToken[m] ?? null);
    // A metric no layer can give (no z in the data, no A) is left out; decorations leave it untinted.
    if (rows.every((r) => r === null)) continue;
    const out = new Float32Array(layers.length * L).fill(NaN);
    rows.forEach((r, i) => r && out.set(r, i * L));
    perToken[m] = toTensorMessage({ shape: [layers.length, L], data: out });
  }
  // The most likely next token and its probability at every position.
  const p = ins.predictions;
  const next = p ? { ids: Int32Array.from({ length: L }, (_, t) => p.ids[t * p.k]), probs: Float32Array.from({ length: L }, (_, t) => p.probs[t * p.k]) } : null;
  return {
    runId,
    layers,
    ...(data.long ? { window: [ins.offset, ins.offset + L] as const } : {}),
    perToken,
    ...(next ? { next: { ids: toTensorMessage({ shape: [L], data: next.ids }), probs: toTensorMessage({ shape: [L], data: next.probs }) } } : {}),
  };
}
