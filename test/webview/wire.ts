/**
 * Moves protocol messages with ArrayBuffers from Node into the test page as one binary body:
 * a JSON skeleton in which each ArrayBuffer is replaced by {"$buffer": i}, followed by the
 * buffers. The page unpacks it into the same object (fresh ArrayBuffers) and posts it the way
 * the host would. Used on both sides: no Node or DOM imports.
 */
const MARK = '$buffer';

export function packMessage(message: unknown): Uint8Array {
  const buffers: ArrayBuffer[] = [];
  const json = JSON.stringify(message, (_k, v: unknown) => {
    if (v instanceof ArrayBuffer) return { [MARK]: buffers.push(v) - 1 };
    if (ArrayBuffer.isView(v)) throw new Error('pack typed arrays as their ArrayBuffer (the protocol sends ArrayBuffers)');
    return v;
  });
  const head = new TextEncoder().encode(json);
  const sizes = [head.byteLength, ...buffers.map((b) => b.byteLength)];
  const out = new Uint8Array(4 * (sizes.length + 1) + sizes.reduce((a, b) => a + b, 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, sizes.length, true);
  sizes.forEach((s, i) => view.setUint32(4 * (i + 1), s, true));
  let at = 4 * (sizes.length + 1);
  out.set(head, at);
  at += head.byteLength;
  for (const b of buffers) {
    out.set(new Uint8Array(b), at);
    at += b.byteLength;
  }
  return out;
}

export function unpackMessage(bytes: ArrayBuffer): unknown {
  const view = new DataView(bytes);
  const n = view.getUint32(0, true);
  const sizes = Array.from({ length: n }, (_, i) => view.getUint32(4 * (i + 1), true));
  let at = 4 * (n + 1);
  const json = new TextDecoder().decode(new Uint8Array(bytes, at, sizes[0]));
  at += sizes[0];
  const buffers = sizes.slice(1).map((s) => {
    const b = bytes.slice(at, at + s);
    at += s;
    return b;
  });
  return JSON.parse(json, (_k, v: unknown) => (v && typeof v === 'object' && MARK in v ? buffers[(v as Record<string, number>)[MARK]] : v));
}
