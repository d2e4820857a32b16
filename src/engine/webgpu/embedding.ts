/** The embedding lookup: hidden[t, j] = Table[ids[t], j] (ids are checked on the host). */
import type { KernelSpec } from './kernel';

export const EMBEDDING_THREADS = 64;

export function embeddingKernel(): KernelSpec {
  return {
    storage: [{ name: 'Ids', type: 'i32' }, { name: 'Table', type: 'f32' }, { name: 'result', type: 'f32', write: true }],
    uniforms: [['rows', 'i32'], ['width', 'i32']],
    workgroupSize: EMBEDDING_THREADS,
    entry: 'flat',
    body: `
fn main(index : i32) {
  let H = uniforms.width;
  if (index >= uniforms.rows * H) { return; }
  let t = index / H;
  result[index] = Table[Ids[t] * H + (index - t * H)];
}`,
  };
}
