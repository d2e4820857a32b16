import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemorySource } from '../../src/engine/io';
import { openCheckpoint } from '../../src/engine/formats/checkpoint';
import { encodeSafetensors, SafetensorsFile } from '../../src/engine/formats/safetensors';
import { NodeFileSource, NodeFolderStore } from '../../src/node/files';
import { concat, safetensorsBytes } from '../fuzz/builders';
import { rejectsWith } from '../fuzz/expect';

const ROOT = path.join(__dirname, '../..');

function open(bytes: Uint8Array, name = 'm.safetensors'): Promise<SafetensorsFile> {
  return SafetensorsFile.open(new MemorySource(name, bytes));
}

function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** A file holding one tensor of `dtype` with the given raw bytes. */
function oneTensor(dtype: string, shape: number[], bytes: number[]): Promise<SafetensorsFile> {
  return open(safetensorsBytes({ t: { dtype, shape, data_offsets: [0, bytes.length] } }, Uint8Array.from(bytes)));
}

async function decoded(dtype: string, shape: number[], bytes: number[]): Promise<number[]> {
  const f = await oneTensor(dtype, shape, bytes);
  const f64 = Array.from((await f.readFloat('t', 'float64')).data);
  // float32 decoding agrees wherever float32 holds the value.
  assert.deepEqual(Array.from((await f.readFloat('t', 'float32')).data), f64.map(Math.fround));
  return f64;
}

const u16le = (...v: number[]) => v.flatMap((x) => [x & 0xff, x >> 8]);

describe('formats: safetensors reader', () => {
  describe('real checkpoints and dumps (values checked against numpy)', () => {
    it('mamba1-tiny (F32)', async () => {
      const f = await SafetensorsFile.open(await NodeFileSource.open(path.join(ROOT, 'test/fixtures/mamba1-tiny/model.safetensors')));
      assert.equal(f.names().length, 22);
      assert.deepEqual(f.metadata, { format: 'pt' });
      const a = await f.readFloat('backbone.layers.0.mixer.A_log', 'float64');
      assert.deepEqual(a.shape, [256, 16]);
      assert.equal(a.data[0], 0.09001749008893967);
      assert.equal(a.data[a.data.length - 1], 2.6083123683929443);
      assert.ok(Math.abs(sum(a.data) - 7822.840090790414) < 1e-9);
      assert.ok(Math.abs(sum((await f.readFloat('backbone.embeddings.weight', 'float64')).data) + 319.3492162912535) < 1e-9);
    });

    it('the shipped mamba1-demo (F16)', async () => {
      const f = await SafetensorsFile.open(await NodeFileSource.open(path.join(ROOT, 'assets/mamba1-demo/model.safetensors')));
      assert.equal(f.names().length, 42);
      assert.equal(f.info('backbone.layers.3.mixer.D')?.dtype, 'F16');
      const bias = await f.readFloat('backbone.layers.0.mixer.dt_proj.bias', 'float64');
      assert.deepEqual(Array.from(bias.data.subarray(0, 3)), [-5.19921875, -2.705078125, -2.607421875]);
      assert.equal(sum(bias.data), -2066.3583984375);
      assert.ok(Math.abs(sum((await f.readFloat('backbone.embeddings.weight', 'float64')).data) - 1389.5975042581558) < 1e-9);
    });

    it('a mamba-dump/1 file (I32 ids, F32 internals, string metadata)', async () => {
      const f = await SafetensorsFile.open(await NodeFileSource.open(path.join(ROOT, 'test/fixtures/dumps/mamba1-sample1.safetensors')));
      assert.equal(f.metadata.format, 'mamba-dump/1');
      assert.equal(JSON.parse(f.metadata.tokens).length, 233);
      const ids = await f.readNative('input_ids');
      assert.ok(ids.data instanceof Int32Array);
      assert.deepEqual(Array.from(ids.data.subarray(0, 3)), [497, 632, 63]);
      assert.equal(sum(ids.data), 78098);
      assert.ok(Math.abs(sum((await f.readFloat('layers.1.delta', 'float64')).data) - 1532.9594967856701) < 1e-9);
    });
  });

  describe('decodes every dtype', () => {
    it('F64, F32', async () => {
      assert.deepEqual(await decoded('F64', [2], [...new Uint8Array(new Float64Array([1.5, -1e300]).buffer)]), [1.5, -1e300]);
      assert.deepEqual(await decoded('F32', [2], [...new Uint8Array(new Float32Array([0.25, -3]).buffer)]), [0.25, -3]);
    });

    it('F16: 0x3C00 = 1, subnormals, infinities, NaN', async () => {
      const v = await decoded('F16', [6], u16le(0x3c00, 0xc000, 0x0001, 0x7c00, 0xfc00, 0x7e00));
      assert.deepEqual(v.slice(0, 5), [1, -2, 2 ** -24, Infinity, -Infinity]);
      assert.ok(Number.isNaN(v[5]));
    });

    it('BF16: 0x3F80 = 1', async () => {
      const v = await decoded('BF16', [4], u16le(0x3f80, 0xc040, 0x7f80, 0x0001));
      assert.deepEqual(v, [1, -3, Infinity, 2 ** -133]);
    });

    it('F8_E4M3 (fn: no infinities): 0x7E = 448, 0x7F = NaN', async () => {
      const v = await decoded('F8_E4M3', [6], [0x38, 0x7e, 0x01, 0x80, 0xfe, 0x7f]);
      assert.deepEqual(v.slice(0, 5), [1, 448, 2 ** -9, -0, -448]);
      assert.ok(Number.isNaN(v[5]));
    });

    it('F8_E5M2: 0x7C = Inf', async () => {
      const v = await decoded('F8_E5M2', [5], [0x3c, 0x7c, 0xfc, 0x01, 0x7d]);
      assert.deepEqual(v.slice(0, 4), [1, Infinity, -Infinity, 2 ** -16]);
      assert.ok(Number.isNaN(v[4]));
    });

    it('F8_E8M0 (powers of two, 0xFF = NaN)', async () => {
      const v = await decoded('F8_E8M0', [3], [0x7f, 0x80, 0xff]);
      assert.deepEqual(v.slice(0, 2), [1, 2]);
      assert.ok(Number.isNaN(v[2]));
    });

    it('F4 (E2M1, two per byte, low nibble first)', async () => {
      assert.deepEqual(await decoded('F4', [4], [0x21, 0xf7]), [0.5, 1, 6, -6]);
      await rejectsWith(oneTensor('F4', [3], [0, 0]), 'm.safetensors', /F4 \[3\] needs an impossible number of bytes/);
    });

    it('integers and BOOL keep their type natively and convert exactly to floats', async () => {
      const cases: [string, ArrayLike<number | bigint> & { buffer: ArrayBufferLike }, number[]][] = [
        ['I64', BigInt64Array.from([-5n, 2n ** 52n]), [-5, 2 ** 52]],
        ['U64', BigUint64Array.from([7n, 2n ** 63n]), [7, 2 ** 63]],
        ['I32', Int32Array.from([-2147483648, 5]), [-2147483648, 5]],
        ['U32', Uint32Array.from([4294967295, 0]), [4294967295, 0]],
        ['I16', Int16Array.from([-32768, 1]), [-32768, 1]],
        ['U16', Uint16Array.from([65535, 2]), [65535, 2]],
        ['I8', Int8Array.from([-128, 127]), [-128, 127]],
        ['U8', Uint8Array.from([255, 3]), [255, 3]],
        ['BOOL', Uint8Array.from([0, 1]), [0, 1]],
      ];
      for (const [dtype, data, values] of cases) {
        const f = await oneTensor(dtype, [2], [...new Uint8Array(data.buffer)]);
        const native = await f.readNative('t');
        assert.equal(native.data.constructor, dtype === 'BOOL' ? Uint8Array : data.constructor, dtype);
        assert.deepEqual(Array.from(native.data as ArrayLike<number | bigint>, Number), values, dtype);
        assert.deepEqual(Array.from((await f.readFloat('t', 'float64')).data), values, dtype);
      }
    });

    it('round-trips through the writer, 8-byte aligned', async () => {
      const bytes = encodeSafetensors(
        [
          { name: 'x', tensor: { shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) } },
          { name: 'ids', tensor: { shape: [3], data: Int32Array.from([7, 8, 9]) } },
        ],
        { format: 'mamba-dump/1' },
      );
      const f = await open(bytes);
      assert.equal((8 + Number(new DataView(bytes.buffer).getBigUint64(0, true))) % 8, 0);
      assert.deepEqual(f.metadata, { format: 'mamba-dump/1' });
      assert.deepEqual(Array.from((await f.readNative('ids')).data as Int32Array), [7, 8, 9]);
    });
  });

  describe('rejects broken files with an InputError naming the file and the problem', () => {
    const t = (dtype: string, shape: unknown, data_offsets: unknown) => ({ dtype, shape, data_offsets });
    const valid = safetensorsBytes({ a: t('F32', [2], [0, 8]) }, new Uint8Array(8));
    const cases: [string, Uint8Array, RegExp][] = [
      ['empty', new Uint8Array(0), /0 bytes: too short/],
      ['truncated length', valid.subarray(0, 5), /5 bytes: too short/],
      ['truncated header', valid.subarray(0, 20), /header but the file has only 12 bytes after the length \(truncated\?\)/],
      ['truncated data', valid.subarray(0, valid.length - 1), /ends at byte 8 of the data area, which has only 7 bytes \(truncated\?\)/],
      ['header length > 100 MB', safetensorsBytes({}, undefined, 100_000_001), /100000001-byte header; safetensors allows at most 100000000/],
      ['header length 2^64 - 1', concat([new Uint8Array(8).fill(0xff), new Uint8Array(8)]), /18446744073709551615-byte header/],
      ['header length > file', safetensorsBytes({}, undefined, 50_000_000), /50000000-byte header but the file has only 2 bytes/],
      ['header length 0', safetensorsBytes('', new Uint8Array(4)), /0-byte header: too short/],
      ['non-JSON header', safetensorsBytes('{"a": [1, 2', new Uint8Array(0)), /header is not valid JSON/],
      ['not UTF-8', safetensorsBytes('{}', undefined).map((b, i) => (i === 8 ? 0xc3 : i === 9 ? 0x28 : b)), /header: not valid UTF-8/],
      ['array header', safetensorsBytes([1, 2]), /header is not a JSON object/],
      ['null header', safetensorsBytes('null'), /header is not a JSON object/],
      ['string header', safetensorsBytes('"hi"'), /header is not a JSON object/],
      ['entry not an object', safetensorsBytes({ a: 5 }), /tensor "a" is not a JSON object/],
      ['bad dtype', safetensorsBytes({ a: t('F128', [1], [0, 16]) }, new Uint8Array(16)), /tensor "a" has unsupported dtype "F128"/],
      ['dtype not a string', safetensorsBytes({ a: t(4 as unknown as string, [1], [0, 4]) }, new Uint8Array(4)), /unsupported dtype 4/],
      ['negative dim', safetensorsBytes({ a: t('F32', [-1], [0, 4]) }, new Uint8Array(4)), /invalid shape \[-1\]/],
      ['fractional dim', safetensorsBytes({ a: t('F32', [1.5], [0, 4]) }, new Uint8Array(4)), /invalid shape \[1.5\]/],
      ['shape not a list', safetensorsBytes({ a: t('F32', '4', [0, 4]) }, new Uint8Array(4)), /invalid shape "4"/],
      ['offsets not a pair', safetensorsBytes({ a: t('F32', [1], [0]) }, new Uint8Array(4)), /invalid data_offsets \[0\]/],
      ['negative offset', safetensorsBytes({ a: t('F32', [1], [-4, 0]) }, new Uint8Array(4)), /invalid data_offsets \[-4,0\]/],
      ['offsets reversed', safetensorsBytes({ a: t('F32', [0], [4, 0]) }, new Uint8Array(4)), /\[4, 0\] that end before they begin/],
      ['out-of-range offsets', safetensorsBytes({ a: t('F32', [2], [0, 8]) }, new Uint8Array(4)), /ends at byte 8 of the data area, which has only 4 bytes/],
      ['offsets past 2^53', safetensorsBytes({ a: t('F32', [1], [2 ** 60, 2 ** 60 + 4]) }, new Uint8Array(4)), /invalid data_offsets/],
      ['overlapping offsets', safetensorsBytes({ a: t('F32', [2], [0, 8]), b: t('F32', [2], [4, 12]) }, new Uint8Array(12)), /tensors "a" and "b" overlap \(bytes 0-8 and 4-12\)/],
      ['byte length != shape x dtype', safetensorsBytes({ a: t('F32', [3], [0, 8]) }, new Uint8Array(8)), /tensor "a" is 8 bytes but F32 \[3\] needs 12 bytes/],
      ['element count beyond 2^53', safetensorsBytes({ a: t('U8', [2 ** 40, 2 ** 40], [0, 8]) }, new Uint8Array(8)), /needs an impossible number of bytes/],
      ['metadata value not a string', safetensorsBytes({ __metadata__: { n: 3 } }), /__metadata__\["n"\] is not a string/],
      ['metadata not an object', safetensorsBytes({ __metadata__: ['x'] }), /__metadata__ is not a JSON object/],
    ];
    for (const [what, bytes, problem] of cases) {
      it(what, () => rejectsWith(open(bytes, 'bad/m.safetensors'), 'bad/m.safetensors', problem));
    }
    it('an unknown tensor name', async () => rejectsWith((await open(valid)).readNative('b'), 'm.safetensors', /has no tensor named "b"/));
  });
});

describe('formats: checkpoints (single file and sharded)', () => {
  let dir: string;
  const shard = (tensors: Record<string, number[]>, metadata: Record<string, string> = {}) =>
    encodeSafetensors(Object.entries(tensors).map(([name, v]) => ({ name, tensor: { shape: [v.length], data: Float32Array.from(v) } })), metadata);
  const write = (name: string, bytes: Uint8Array | string) => writeFileSync(path.join(dir, name), bytes);
  const index = (weightMap: Record<string, unknown>) => write('model.safetensors.index.json', JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mamba-scope-ckpt-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a sharded checkpoint through model.safetensors.index.json', async () => {
    write('model-00001-of-00002.safetensors', shard({ 'a.weight': [1, 2], 'b.weight': [3] }, { format: 'pt' }));
    write('model-00002-of-00002.safetensors', shard({ 'c.weight': [4, 5, 6] }));
    index({ 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00001-of-00002.safetensors', 'c.weight': 'model-00002-of-00002.safetensors' });
    const ckpt = await openCheckpoint(new NodeFolderStore(dir));
    assert.deepEqual(ckpt.names().sort(), ['a.weight', 'b.weight', 'c.weight']);
    assert.equal(ckpt.info('c.weight')?.dtype, 'F32');
    assert.deepEqual(ckpt.info('c.weight')?.shape, [3]);
    assert.deepEqual(Array.from((await ckpt.readFloat('c.weight', 'float64')).data), [4, 5, 6]);
    assert.deepEqual(Array.from((await ckpt.readNative('a.weight')).data as Float32Array), [1, 2]);
    assert.equal(ckpt.metadata.format, 'pt');
    await rejectsWith(ckpt.readNative('d.weight'), dir, /has no tensor named "d.weight"/);
  });

  it('prefers model.safetensors when both exist', async () => {
    write('model.safetensors', shard({ x: [9] }));
    index({ y: 'missing.safetensors' });
    assert.deepEqual((await openCheckpoint(new NodeFolderStore(dir))).names(), ['x']);
  });

  it('rejects broken indexes naming the file and the problem', async () => {
    const store = new NodeFolderStore(dir);
    const indexPath = path.join(dir, 'model.safetensors.index.json');
    await rejectsWith(openCheckpoint(store), dir, /has no model weights \(none of model\.safetensors, model\.safetensors\.index\.json, pytorch_model\.bin, pytorch_model\.bin\.index\.json\)/);
    write('model.safetensors.index.json', '{"weight_map": ');
    await rejectsWith(openCheckpoint(store), indexPath, /is not valid JSON/);
    write('model.safetensors.index.json', '{"metadata": {}}');
    await rejectsWith(openCheckpoint(store), indexPath, /has no "weight_map" object/);
    index({ a: 'nowhere.safetensors' });
    await rejectsWith(openCheckpoint(store), indexPath, /names shard "nowhere.safetensors", which does not exist/);
    index({ a: '../outside.safetensors' });
    await rejectsWith(openCheckpoint(store), indexPath, /weight_map\["a"\] is not a shard file name in the model folder/);
    index({ a: 7 });
    await rejectsWith(openCheckpoint(store), indexPath, /weight_map\["a"\] is not a shard/);
    write('s1.safetensors', shard({ b: [1] }));
    index({ a: 's1.safetensors' });
    await rejectsWith(openCheckpoint(store), path.join(dir, 's1.safetensors'), /has no tensor "a", which .*index.json places there/);
    write('s1.safetensors', new Uint8Array([1, 2, 3]));
    index({ b: 's1.safetensors' });
    await rejectsWith(openCheckpoint(store), path.join(dir, 's1.safetensors'), /too short/);
  });
});
