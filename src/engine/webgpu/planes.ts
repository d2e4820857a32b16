/**
 * Column planes: a [rows, Σ widths] result stored as one row-major [rows, width] matrix per
 * column range, each starting on a 256-byte boundary of one buffer.
 *
 * A projection's output is several tensors side by side (in_proj: x and z; x_proj: dt, B, C;
 * Mamba-2's in_proj: z, xBC, dt). Written as planes, each is a contiguous tensor that the next
 * kernel binds by itself (a binding offset must be a multiple of 256 bytes), so no split or
 * copy dispatch is needed, and the scan generator's plain [L, C] indexing applies unchanged.
 */
import type { BufferRange } from './kernel';

/** 256 bytes: the largest minStorageBufferOffsetAlignment WebGPU allows. */
const ALIGN_ELEMENTS = 64;

export interface PlaneLayout {
  readonly rows: number;
  readonly widths: readonly number[];
  /** Element offset of each plane. */
  readonly offsets: readonly number[];
  /** Elements the buffer needs. */
  readonly size: number;
}

const aligned = (n: number) => Math.ceil(n / ALIGN_ELEMENTS) * ALIGN_ELEMENTS;

export function planeLayout(rows: number, widths: readonly number[]): PlaneLayout {
  const offsets: number[] = [];
  let size = 0;
  for (const w of widths) {
    offsets.push(size);
    size += aligned(rows * w);
  }
  return { rows, widths, offsets, size };
}

/** Plane `p` of a buffer laid out as `layout`, as a binding. */
export function planeRange(buffer: GPUBuffer, layout: PlaneLayout, p: number): BufferRange {
  return { buffer, offset: 4 * layout.offsets[p], size: 4 * layout.rows * layout.widths[p] };
}

/**
 * WGSL `fn <name>(rows : i32, m : i32, n : i32) -> i32`: the element of column n of row m.
 * Widths are baked in (they come from the model), the row count is passed (it is the
 * sequence length, or a block of it), so one pipeline serves every plan of a model.
 */
export function planeIndexWgsl(name: string, widths: readonly number[]): string {
  const lines: string[] = [];
  let start = 0;
  widths.forEach((w, p) => {
    const at = `base + m * ${w} + (n - ${start})`;
    const last = p === widths.length - 1;
    lines.push(last ? `return ${at};` : `if (n < ${start + w}) { return ${at}; }`);
    if (!last) lines.push(`base = base + (rows * ${w} + ${ALIGN_ELEMENTS - 1}) / ${ALIGN_ELEMENTS} * ${ALIGN_ELEMENTS};`);
    start += w;
  });
  return `fn ${name}(rows : i32, m : i32, n : i32) -> i32 {
  var base = 0;
  ${lines.join('\n  ')}
}`;
}
