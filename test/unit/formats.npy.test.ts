import * as assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { MemorySource } from '../../src/engine/io';
import { encodeNpy, NpyFile } from '../../src/engine/formats/npy';
import type { Tensor } from '../../src/engine/tensor';
import { elementBytes, itemSize, NPY_CODES, npyBytes, npyDict, toFortranOrder, type NpyCode } from '../fuzz/builders';
import { rejectsWith } from '../fuzz/expect';

const CORPUS = path.join(__dirname, '../fuzz/corpus/npy');

function open(bytes: Uint8Array, name = 'dir/x.npy'): Promise<NpyFile> {
  return NpyFile.open(new MemorySource(name, bytes));
}

/** Values every dtype holds exactly: signed ones get negatives, bools 0/1. */
function sampleValues(code: NpyCode, n: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    if (code === 'b1') return i % 3 === 0 ? 0 : 1;
    if (code[0] === 'u') return (i * 7) % 200;
    if (code[0] === 'i') return ((i * 7) % 200) - 100;
    return (i - 5) * 0.5; // f2 holds halves exactly
  });
}

function asNumbers(t: Tensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

describe('formats: .npy reader', () => {
  const shape = [2, 3, 4];
  const n = 24;
  for (const code of NPY_CODES) {
    const orders = itemSize(code) === 1 ? ['|', '<', '>'] : ['<', '>', '='];
    for (const order of orders) {
      for (const fortran of [false, true]) {
        for (const version of [1, 2, 3] as const) {
          it(`reads ${order}${code} ${fortran ? 'Fortran' : 'C'} order, version ${version}`, async () => {
            const values = sampleValues(code, n);
            const stored = fortran ? toFortranOrder(values, shape) : values;
            const bytes = npyBytes(npyDict(`${order}${code}`, fortran, shape), elementBytes(code, stored, order === '>'), { version });
            const file = await open(bytes, `data/${code}.npy`);
            assert.deepEqual(file.names(), [code]);
            assert.deepEqual(file.info(code)?.shape, shape);
            assert.deepEqual(asNumbers(await file.readNative(code)), values);
            const f64 = await file.readFloat(code, 'float64');
            assert.ok(f64.data instanceof Float64Array);
            assert.deepEqual(Array.from(f64.data), values);
            assert.deepEqual(Array.from((await file.readFloat(code, 'float32')).data), values);
          });
        }
      }
    }
  }

  it('reads the files numpy itself wrote (every dtype, big-endian, Fortran, versions 2 and 3, 0-d, empty)', async () => {
    const files = readdirSync(CORPUS).filter((f) => f.endsWith('.npy'));
    assert.ok(files.length >= 20);
    for (const f of files) {
      const store = await NpyFile.open(new MemorySource(f, readFileSync(path.join(CORPUS, f))));
      const name = f.slice(0, -4);
      const t = await store.readNative(name);
      const count = t.shape.reduce((a, b) => a * b, 1);
      // make_numpy_seeds.py stores arange(n) (bools: arange % 3 != 0) in row-major order.
      const expected = Array.from({ length: count }, (_, i) => (f.startsWith('b1') ? Number(i % 3 !== 0) : i));
      assert.deepEqual(asNumbers(t), expected, f);
    }
  });

  it('writes byte-for-byte what numpy writes, and reads its own output back', async () => {
    const numpyMade = readFileSync(path.join(CORPUS, 'f4-c-v1.npy'));
    const ours = encodeNpy({ shape: [2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) });
    assert.deepEqual(Buffer.from(ours), numpyMade);
    const arrays = [
      new Float64Array([1.5, -2]), new Float32Array([3]), new Int32Array([-7, 8]), new Uint32Array([9]),
      new Int16Array([-1]), new Uint16Array([2]), new Int8Array([-3]), new Uint8Array([4]),
      new BigInt64Array([-5n]), new BigUint64Array([6n]),
    ];
    for (const data of arrays) {
      for (const shape of [[data.length], [1, data.length], []].filter((s) => s.reduce((a, b) => a * b, 1) === data.length)) {
        const bytes = encodeNpy({ shape, data });
        assert.equal((bytes[8] | (bytes[9] << 8)) % 64, 54, 'data starts at a multiple of 64');
        const back = await (await open(bytes, 't.npy')).readNative('t');
        assert.deepEqual(back.shape, shape);
        assert.equal(back.data.constructor, data.constructor);
        assert.deepEqual(Array.from(back.data as ArrayLike<number>), Array.from(data as ArrayLike<number>));
      }
    }
  });

  it('names the tensor after the file and rejects other names', async () => {
    const file = await open(encodeNpy({ shape: [1], data: new Float32Array([1]) }), 'C:\\data\\weights.v2.npy');
    assert.deepEqual(file.names(), ['weights.v2']);
    assert.equal(file.info('x'), undefined);
    await rejectsWith(file.readNative('x'), 'C:\\data\\weights.v2.npy', /no tensor named "x"/);
  });

  describe('rejects broken files with an InputError naming the file and the problem', () => {
    const good = (header: string, data = new Uint8Array(24)) => npyBytes(header, data);
    const dict = npyDict('<f4', false, [2, 3]);
    const cases: [string, Uint8Array, RegExp][] = [
      ['empty file', new Uint8Array(0), /0 bytes: too short/],
      ['bad magic', Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x58, 1, 0, 0, 0, 0, 0]), /magic/],
      ['version 4', Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 4, 0, 0, 0, 0, 0]), /version 4\.0/],
      ['truncated data', good(dict, new Uint8Array(23)), /23 data bytes .* needs 24 .*truncated/],
      ['oversized data', good(dict, new Uint8Array(25)), /25 data bytes .* needs 24/],
      ['header length past the end', npyBytes(dict, new Uint8Array(24), { declaredLength: 60000 }), /60000-byte .npy header but only/],
      ['absurd header length (v2)', npyBytes(dict, new Uint8Array(24), { version: 2, declaredLength: 0xfffffff0 }), /4294967280-byte .npy header; at most/],
      ['not a dict', good(`['descr', '<f4']`), /expected "\{"/],
      ['code instead of a value', good(`{'descr': __import__('os').system('rm -rf /'), 'fortran_order': False, 'shape': (6,), }`), /not a string, True\/False or a tuple/],
      ['a call in the shape', good(`{'descr': '<f4', 'fortran_order': False, 'shape': (len('abc'),), }`), /expected an integer/],
      ['unknown key', good(`{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'evil': 1}`), /unexpected key 'evil'/],
      ['repeated key', good(`{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}`), /repeats key 'descr'/],
      ['missing shape', good(`{'descr': '<f4', 'fortran_order': False}`), /no 'shape' tuple/],
      ['1-tuple without comma', good(`{'descr': '<f4', 'fortran_order': False, 'shape': (6)}`), /not a tuple/],
      ['negative dimension', good(`{'descr': '<f4', 'fortran_order': False, 'shape': (-6,)}`), /expected an integer/],
      ['text after the dict', good(`${dict} import os`), /text after the dict/],
      ['unterminated string', good(`{'descr': '<f4`), /unterminated string/],
      ['escape in a string', good(`{'descr': '<f\\x34', 'fortran_order': False, 'shape': (6,)}`), /escape/],
      ['object dtype', good(npyDict('|O', false, [6])), /dtype '\|O'.*pickled Python objects/],
      ['complex dtype', good(npyDict('<c8', false, [3])), /dtype '<c8', which is not read/],
      ['structured dtype', good(`{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }`), /not a string, True\/False or a tuple/],
      ['fortran_order not a bool', good(`{'descr': '<f4', 'fortran_order': 'no', 'shape': (6,)}`), /no 'fortran_order' True\/False/],
      ['shape too large to exist', good(npyDict('<f4', false, [2 ** 40, 2 ** 40])), /needs an impossible number of/],
      ['dimension beyond 2^53', good(`{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}`), /too large/],
      ['too many dimensions', good(npyDict('<f4', false, new Array(65).fill(1))), /more than 64 dimensions/],
    ];
    for (const [what, bytes, problem] of cases) {
      it(what, () => rejectsWith(open(bytes, 'bad/x.npy'), 'bad/x.npy', problem));
    }
  });
});
