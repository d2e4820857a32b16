/**
 * Moves protocol messages with ArrayBuffers from Node into the test page: a JSON skeleton in
 * which each ArrayBuffer is replaced by {"$buffer": i}, and the buffers, each fetched on its own
 * so the page receives every buffer once, as a VS Code webview does (a single packed body would
 * be a second copy of a 0.5 GB weights message). Used on both sides: no Node or DOM imports.
 */
const MARK = '$buffer';

export interface SplitMessage {
  readonly skeleton: string;
  readonly buffers: readonly ArrayBuffer[];
}

export function splitMessage(message: unknown): SplitMessage {
  const buffers: ArrayBuffer[] = [];
  const skeleton = JSON.stringify(message, (_k, v: unknown) => {
    if (v instanceof ArrayBuffer) return { [MARK]: buffers.push(v) - 1 };
    if (ArrayBuffer.isView(v)) throw new Error('pack typed arrays as their ArrayBuffer (the protocol sends ArrayBuffers)');
    return v;
  });
  return { skeleton, buffers };
}

/** The message again, from its skeleton and its buffers (fetched by index). */
export async function joinMessage(skeleton: string, buffer: (index: number) => Promise<ArrayBuffer>): Promise<unknown> {
  const indices: number[] = [];
  JSON.parse(skeleton, (_k, v: unknown) => (v && typeof v === 'object' && MARK in v ? (indices.push((v as Record<string, number>)[MARK]), v) : v));
  const buffers = new Map<number, ArrayBuffer>();
  for (const i of indices) buffers.set(i, await buffer(i));
  return JSON.parse(skeleton, (_k, v: unknown) => (v && typeof v === 'object' && MARK in v ? buffers.get((v as Record<string, number>)[MARK]) : v));
}
