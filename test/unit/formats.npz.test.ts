import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { zipSync } from 'fflate';
import { LimitError } from '../../src/engine/errors';
import { MemorySource } from '../../src/engine/io';
import { encodeNpy } from '../../src/engine/formats/npy';
import { NpzFile } from '../../src/engine/formats/npz';
import { crc32 } from '../../src/engine/formats/zipArchive';
import { buildZip, concat, npyBytes, npyDict } from '../fuzz/builders';
import { rejectsWith } from '../fuzz/expect';

const CORPUS = path.join(__dirname, '../fuzz/corpus/npz');

const a = encodeNpy({ shape: [2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) });
const b = encodeNpy({ shape: [4], data: BigInt64Array.from([-1n, 2n, -3n, 4n]) });

function open(bytes: Uint8Array, options = {}): Promise<NpzFile> {
  return NpzFile.open(new MemorySource('x.npz', bytes), options);
}

async function expectAB(npz: NpzFile): Promise<void> {
  assert.deepEqual(npz.names().sort(), ['a', 'b']);
  assert.deepEqual(npz.info('a'), { dtype: 'F32', shape: [2, 3] });
  assert.deepEqual(Array.from((await npz.readFloat('a', 'float64')).data), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(Array.from((await npz.readNative('b')).data as BigInt64Array), [-1n, 2n, -3n, 4n]);
}

describe('formats: .npz reader', () => {
  it('reads stored and deflated members of an fflate-built archive', async () => {
    await expectAB(await open(zipSync({ 'a.npy': a, 'b.npy': b }, { level: 0 })));
    await expectAB(await open(zipSync({ 'a.npy': [a, { level: 9 }], 'b.npy': [b, { level: 0 }] })));
  });

  it('reads what np.savez and np.savez_compressed wrote (zip64 local headers, a big-endian Fortran member)', async () => {
    const arange = (n: number) => Array.from({ length: n }, (_, i) => i);
    const stored = await NpzFile.open(new MemorySource('stored.npz', readFileSync(path.join(CORPUS, 'stored.npz'))));
    assert.deepEqual(stored.names(), ['a', 'b']);
    assert.deepEqual(Array.from((await stored.readFloat('a', 'float32')).data), arange(6));
    assert.deepEqual(Array.from((await stored.readNative('b')).data as BigInt64Array), [0n, 1n, 2n, 3n]);
    const deflated = await NpzFile.open(new MemorySource('deflated.npz', readFileSync(path.join(CORPUS, 'deflated.npz'))));
    assert.deepEqual(deflated.names(), ['a', 'b', 'fortran']);
    const f = await deflated.readFloat('fortran', 'float64');
    assert.deepEqual(f.shape, [3, 4]);
    assert.deepEqual(Array.from(f.data), arange(12));
  });

  it('reads zip64 directories and end records, skips non-.npy members, keeps folder names', async () => {
    const zip = buildZip(
      [
        { name: 'a.npy', data: a, method: 8, zip64: true },
        { name: 'notes.txt', data: new Uint8Array([1, 2, 3]) },
        { name: 'sub/b.npy', data: b, zip64: true },
      ],
      { zip64End: true },
    );
    const npz = await open(zip);
    assert.deepEqual(npz.names(), ['a', 'sub/b']);
    assert.deepEqual(Array.from((await npz.readNative('sub/b')).data as BigInt64Array), [-1n, 2n, -3n, 4n]);
  });

  it('opens a member over the size limit (names, shapes) but refuses to inflate it, saying how to raise the limit', async () => {
    const big = encodeNpy({ shape: [1 << 19], data: new Float32Array(1 << 19) }); // 2 MiB of zeros, ~2 KiB deflated
    const zip = zipSync({ 'big.npy': big }, { level: 1 });
    const npz = await open(zip, { maxMemberBytes: 1 << 20 });
    assert.deepEqual(npz.info('big')?.shape, [1 << 19]);
    await rejectsWith(npz.readNative('big'), 'x.npz', /"big.npy" is 2097280 bytes uncompressed, over the 1048576-byte limit.*raise the maxMemberBytes option/, LimitError);
    assert.equal((await (await open(zip)).readNative('big')).data.length, 1 << 19);
  });

  describe('rejects broken and hostile archives with an InputError naming the file and the problem', () => {
    const good = zipSync({ 'a.npy': a, 'b.npy': [b, { level: 6 }] }, { level: 0 });

    it('truncated anywhere', async () => {
      for (const cut of [0, 10, 21, 100, good.length - 60, good.length - 22, good.length - 1]) {
        await rejectsWith(open(good.subarray(0, cut)), 'x.npz', /too short|no zip end|truncated|corrupt|runs past|outside/);
      }
    });

    it('a stored member whose bytes fail the CRC', async () => {
      const bad = good.slice();
      bad[bad.indexOf(0x93) + 128 + 4] ^= 1; // a byte of a's data, past its .npy header
      const npz = await open(bad);
      await rejectsWith(npz.readNative('a'), 'x.npz', /member "a.npy" fails its CRC check/);
    });

    it('a deflated member that fails the CRC', async () => {
      const zip = buildZip([{ name: 'a.npy', data: a, method: 8, crc: crc32(a) ^ 1 }]);
      await rejectsWith((await open(zip)).readNative('a'), 'x.npz', /fails its CRC check/);
    });

    it('a zip bomb: a member declaring more than deflate can produce', () =>
      rejectsWith(open(buildZip([{ name: 'a.npy', data: a, method: 8, uncompressedSize: 2 ** 32 - 1 }])), 'x.npz', /declares 4294967295 bytes from \d+ compressed, more than deflate can produce/));

    it('a member that inflates past its declared size', async () => {
      // The .npy header says 6 floats and the directory agrees, but the deflate stream holds more.
      const zip = buildZip([{ name: 'a.npy', data: concat([a, new Uint8Array(5000)]), method: 8, uncompressedSize: a.length }]);
      await rejectsWith((await open(zip)).readNative('a'), 'x.npz', /inflates to more than its declared/);
    });

    it('a member that inflates to less than declared', async () => {
      // Header and directory agree on 7000 floats; the deflate stream ends after the header.
      const header = npyBytes(npyDict('<f4', false, [7000]), new Uint8Array(0));
      const zip = buildZip([{ name: 'a.npy', data: header, method: 8, uncompressedSize: header.length + 28000 }]);
      await rejectsWith((await open(zip)).readNative('a'), 'x.npz', /"a.npy" inflates to 128 bytes, fewer than its declared 28128/);
    });

    it('a member whose declared size disagrees with its .npy header', () =>
      rejectsWith(open(buildZip([{ name: 'a.npy', data: concat([a, new Uint8Array(4)]) }])), 'x.npz', /member "a.npy": has 28 data bytes but <f4 \[2, 3\] needs 24/));

    it('corrupt deflate data', async () => {
      const zip = buildZip([{ name: 'a.npy', data: a, method: 8 }]);
      zip[30 + 'a.npy'.length] = 0xff; // first deflate block: final, type 3 (reserved)
      await rejectsWith(open(zip), 'x.npz', /"a.npy" is not valid deflate data/);
    });

    it('overlapping members', () =>
      rejectsWith(open(buildZip([{ name: 'a.npy', data: a }, { name: 'b.npy', data: a, localHeaderOffset: 0 }])), 'x.npz', /members "a.npy" and "b.npy" overlap/));

    it('encrypted members, other compression methods, mismatched stored sizes', async () => {
      await rejectsWith(open(buildZip([{ name: 'a.npy', data: a, flags: 1 }])), 'x.npz', /"a.npy" is encrypted/);
      const bzip = buildZip([{ name: 'a.npy', data: a }]);
      new DataView(bzip.buffer).setUint16(bzip.length - 22 - 46 - 5 + 10, 12, true);
      await rejectsWith(open(bzip), 'x.npz', /compression method 12/);
      await rejectsWith(open(buildZip([{ name: 'a.npy', data: a, uncompressedSize: 1 }])), 'x.npz', /is stored but declares/);
    });

    it('an archive without .npy members, and duplicate names', async () => {
      await rejectsWith(open(zipSync({ 'readme.txt': new Uint8Array(3) })), 'x.npz', /no .npy members/);
      await rejectsWith(open(buildZip([{ name: 'a.npy', data: a }, { name: 'a.npy', data: a }])), 'x.npz', /two members named "a.npy"/);
    });

    it('a central directory that lies about its size, count or position', async () => {
      const lie = (at: number, value: number) => {
        const z = good.slice();
        new DataView(z.buffer).setUint32(z.length - 22 + at, value, true);
        return z;
      };
      await rejectsWith(open(lie(12, 0xfffffff0)), 'x.npz', /central directory .* runs past|zip64/);
      await rejectsWith(open(lie(16, good.length)), 'x.npz', /runs past/);
      const count = good.slice();
      new DataView(count.buffer).setUint16(count.length - 22 + 10, 5, true);
      await rejectsWith(open(count), 'x.npz', /ends after 2 of its 5 members/);
    });
  });
});
