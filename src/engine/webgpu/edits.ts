/**
 * Interventions (../interventions.ts, docs/INTERVENTIONS.md) in the native forward, as the float64
 * reference applies them:
 *  - ablate-write, zero-state and knockout in the scan: edit words after its Params
 *    (scanShaders.ts: editWords), with the scan as one chunk for a reset or a knockout;
 *  - scale-delta: Δ multiplied by a factor table after dt_proj + softplus (the captured delta is
 *    the scaled one);
 *  - steer: the stream entering the layer plus a table of α·v rows, before its norm (the captured
 *    hidden_in includes it); the plan runs it (plan.ts), for every layer kind;
 *  - ablate-path: a hybrid layer's path output replaced (layers/hybrid/webgpu.ts);
 *  - patch-state: the scan's state and the conv's context after a token replaced (patch.ts).
 * A layer without an edit gets none of these: its plan and kernels are the unedited ones.
 */
import type { LayerEdit, ScanEdit } from '../interventions';
import type { Dispatch, KernelSpec } from './kernel';
import type { LayerContext } from './layer';
import { patchKey } from './patch';
import { scanChunking, type ScanChunking } from './selectiveScan';

const SCALE_THREADS = 64;

/** Whether the scan reads edit words: any ablate-write, zero-state or knockout, an empty one included (the sweep's, whose words it rewrites per cell). */
export function scanEdited(scan: ScanEdit | undefined): boolean {
  return !!(scan && (scan.noWrite || scan.reset || scan.knockout));
}

/**
 * The scan's chunks: the plan's, or one chunk for a reset, a knockout or a patch-state. A reset
 * or a patch inside a chunk would break the chunk's carried decay exp(A·ΣΔ) (the carry assumes
 * the state is never replaced), and the knockout's own term lives in registers from its source
 * token on: they need the scan to walk the sequence in one pass.
 */
export function scanChunkingFor(ctx: LayerContext, edit: LayerEdit | undefined): ScanChunking {
  const scan = edit?.scan;
  const whole = !!(scan?.reset?.size || scan?.knockout || edit?.patch);
  return scanChunking(ctx.L, whole ? ctx.L : ctx.chunkLen);
}

/** What scanDispatches is told of the edit (ScanBindings.edit). */
export function scanEditOption(scan: ScanEdit | undefined): { knockout: boolean } | undefined {
  return scanEdited(scan) ? { knockout: !!scan!.knockout } : undefined;
}

/** Δ's factor table [L, columns]: the product of the scalings at each token and column, 1 elsewhere. */
export function deltaFactors(L: number, columns: number, edit: LayerEdit): Float32Array<ArrayBuffer> {
  const f = new Float64Array(L * columns).fill(1);
  for (const s of edit.deltaScale ?? []) {
    for (const t of s.tokens) {
      if (t >= L) continue;
      for (let c = 0; c < columns; c++) if (!s.columns || s.columns.has(c)) f[t * columns + c] *= s.factor;
    }
  }
  return Float32Array.from(f);
}

function scaleInPlaceKernel(): KernelSpec {
  return {
    storage: [{ name: 'F', type: 'f32' }, { name: 'X', type: 'f32', write: true }],
    uniforms: [['total', 'i32']],
    workgroupSize: SCALE_THREADS,
    entry: 'flat',
    body: `
fn main(index : i32) {
  if (index >= uniforms.total) { return; }
  X[index] = X[index] * F[index];
}`,
  };
}

/** scale-delta: Δ [L, columns] ← Δ ⊙ factors, in place; nothing when the edit scales nothing. */
export function deltaScaleDispatches(ctx: LayerContext, label: string, edit: LayerEdit | undefined, delta: GPUBuffer, columns: number): Dispatch[] {
  if (!edit?.deltaScale?.length) return [];
  const total = ctx.L * columns;
  const factors = ctx.constant(`${label} Δ factors`, deltaFactors(ctx.L, columns, edit));
  return [ctx.cache.dispatch(`${label} scale Δ`, scaleInPlaceKernel(), ctx.cache.flatWorkgroups(total, SCALE_THREADS), { F: { buffer: factors }, X: { buffer: delta } }, { total })];
}

/** steer: the rows α·v (summed over the edit's steers) added to the stream at their tokens, [L, H]. */
export function steerRows(L: number, H: number, edit: LayerEdit): Float32Array<ArrayBuffer> {
  const rows = new Float64Array(L * H);
  for (const s of edit.steer ?? []) {
    for (const t of s.tokens) if (t < L) for (let j = 0; j < H; j++) rows[t * H + j] += s.scale * s.vector[j];
  }
  return Float32Array.from(rows);
}

/** A key that tells plans with different edits apart (Maps, Sets and vectors spelled out). */
export function editsKey(edits: ReadonlyMap<number, LayerEdit> | undefined): string {
  if (!edits?.size) return '';
  const list = (s?: ReadonlySet<number>) => (s ? [...s].sort((a, b) => a - b) : null);
  return JSON.stringify([...edits].sort(([a], [b]) => a - b).map(([layer, e]) => [
    layer,
    list(e.scan.noWrite), list(e.scan.reset), e.scan.knockout ?? null,
    (e.deltaScale ?? []).map((s) => [list(s.tokens), s.factor, list(s.columns)]),
    (e.steer ?? []).map((s) => [list(s.tokens), s.scale, Array.from(s.vector)]),
    e.patch ? patchKey(e.patch) : null, e.ablatePath ?? null,
  ]));
}
