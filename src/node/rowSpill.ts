/**
 * Float64 rows spilled to a temp file and read back in blocks: what a streamed analysis needs
 * again only after the last row (forgotten's R(s→L−1) reads every prefix row Q_s once Q_{L−1} is
 * known), kept on disk instead of in memory. The file lives in its own os.tmpdir() folder, which
 * remove() deletes; callers remove in a finally, so an error leaves nothing behind.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export class RowSpill {
  private rows = 0;
  private removed = false;

  private constructor(
    private readonly dir: string,
    private readonly file: string,
    private readonly fd: number,
    /** Values per row. */
    readonly width: number,
  ) {}

  static create(width: number, prefix = 'mamba-scope-spill-'): RowSpill {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    const file = path.join(dir, 'rows.f64');
    try {
      return new RowSpill(dir, file, fs.openSync(file, 'w+'), width);
    } catch (e) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Rows written so far. */
  get length(): number {
    return this.rows;
  }

  /** The rows `data` [n, width] after those written. */
  append(data: Float64Array): void {
    if (data.length % this.width !== 0) throw new RangeError(`${data.length} values are not whole rows of ${this.width}`);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done, this.rows * this.width * 8 + done);
    this.rows += data.length / this.width;
  }

  /** Every row written, in order, `blockRows` at a time: (rows [n, width], first row's index). The block's array is reused. */
  forEachBlock(blockRows: number, body: (rows: Float64Array, start: number) => void): void {
    const block = new Float64Array(blockRows * this.width);
    const bytes = new Uint8Array(block.buffer);
    for (let start = 0; start < this.rows; start += blockRows) {
      const n = Math.min(blockRows, this.rows - start);
      const want = n * this.width * 8;
      let done = 0;
      while (done < want) {
        const got = fs.readSync(this.fd, bytes, done, want - done, start * this.width * 8 + done);
        if (got === 0) throw new Error(`${this.file}: ended after ${start * this.width * 8 + done} bytes of ${this.rows * this.width * 8}`);
        done += got;
      }
      body(block.subarray(0, n * this.width), start);
    }
  }

  /** Closes and deletes the file and its folder; a second call does nothing. */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    try {
      fs.closeSync(this.fd);
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
