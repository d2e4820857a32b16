/** The embedding lookup: hidden[t, j] = scale · Table[ids[t], j] (ids are checked on the host; scale: a hybrid's µP multiplier); the table in f32 or packed 16-bit pairs. */
import type { KernelSpec } from './kernel';
import { halfAtWgsl, type WeightFormat } from './weightFormat';

export const EMBEDDING_THREADS = 64;

export function embeddingKernel(format: WeightFormat): KernelSpec {
  const halfTable = format !== 'f32';
  return {
    storage: [{ name: 'Ids', type: 'i32' }, { name: 'Table', type: halfTable ? 'u32' : 'f32' }, { name: 'result', type: 'f32', write: true }],
    uniforms: [['rows', 'i32'], ['width', 'i32'], ['scale', 'f32']],
    workgroupSize: EMBEDDING_THREADS,
    entry: 'flat',
    body: `${format !== 'f32' ? halfAtWgsl('Table', format) : ''}
fn main(index : i32) {
  let H = uniforms.width;
  if (index >= uniforms.rows * H) { return; }
  let t = index / H;
  let at = Ids[t] * H + (index - t * H);
  result[index] = uniforms.scale * ${halfTable ? 'halfAt(at)' : 'Table[at]'};
}`,
  };
}
