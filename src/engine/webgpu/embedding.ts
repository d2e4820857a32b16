/** The embedding lookup: hidden[t, j] = Table[ids[t], j] (ids are checked on the host); the table in f32 or packed f16. */
import type { KernelSpec } from './kernel';
import { HALF_AT_WGSL } from './weightFormat';

export const EMBEDDING_THREADS = 64;

export function embeddingKernel(halfTable: boolean): KernelSpec {
  return {
    storage: [{ name: 'Ids', type: 'i32' }, { name: 'Table', type: halfTable ? 'u32' : 'f32' }, { name: 'result', type: 'f32', write: true }],
    uniforms: [['rows', 'i32'], ['width', 'i32']],
    workgroupSize: EMBEDDING_THREADS,
    entry: 'flat',
    body: `${halfTable ? HALF_AT_WGSL('Table') : ''}
fn main(index : i32) {
  let H = uniforms.width;
  if (index >= uniforms.rows * H) { return; }
  let t = index / H;
  let at = Ids[t] * H + (index - t * H);
  result[index] = ${halfTable ? 'halfAt(at)' : 'Table[at]'};
}`,
  };
}
