/**
 * A hybrid layer's composition, written once for every engine: each branch adds its operations'
 * sum, scaled, to the stream (x ← x + scale · Σ outScale · op(inScale · norm(x))), Zamba2's shared
 * block joining x before the branch's norm. The engine supplies the arithmetic and the operations
 * (reference.ts in float64, tfjs.ts on TensorFlow.js).
 */
import type { Branch, HybridLayerConfig, Op } from './config';

export interface EngineOps<T> {
  add(a: T, b: T): T;
  scale(x: T, s: number): T;
  norm(x: T, branch: Branch): T;
  /** The stream plus the shared block's output through the layer's linear (Zamba2). */
  shared(stream: T, branch: Branch): T;
  op(op: Op, x: T): T;
}

/** The stream leaving the layer; `record` hears the mixer branch's sum (out) and the feed-forward branch's (mlp_out). */
export function composeLayer<T>(c: HybridLayerConfig, hidden: T, e: EngineOps<T>, record: (name: 'out' | 'mlp_out', t: T) => void): T {
  let stream = hidden;
  c.branches.forEach((b, i) => {
    const normed = e.norm(b.shared ? e.shared(stream, b) : stream, b);
    const sum = b.ops.map((op) => e.scale(e.op(op, e.scale(normed, op.inScale)), op.outScale)).reduce((a, o) => e.add(a, o));
    if (b.ops.every((op) => op.kind === 'mlp' || op.kind === 'moe')) record('mlp_out', sum);
    if (i === 0) record('out', sum);
    stream = e.add(stream, e.scale(sum, b.scale));
  });
  return stream;
}
