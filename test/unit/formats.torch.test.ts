/**
 * torch.save checkpoints (src/engine/formats/torchCheckpoint.ts). The fixtures in
 * test/fixtures/pickle are real torch.save files (PyTorch 2.11) of the trained tiny models, copied
 * from the shared fixtures: each folder loads through the model-folder loader and the float64
 * reference gives transformers' logits (golden.safetensors); the hostile files are refused by
 * name, fast, and nothing in them runs. Hand-built files cover what the fixtures do not: strides,
 * dtypes, shards, and each broken record.
 */
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../src/engine/formats/checkpoint';
import { openTensorFile } from '../../src/engine/formats/tensorFile';
import { TorchCheckpoint } from '../../src/engine/formats/torchCheckpoint';
import { MemorySource, MemoryStore, type ByteSource, type FileStore } from '../../src/engine/io';
import { isLanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { roundBf16 } from '../../src/engine/reference/precision';
import { normalizedError } from '../../src/engine/tensor';
import { NodeFileSource, NodeFolderStore } from '../../src/node/files';
import { buildZip, concat, elementBytes, f16Bits, pickle, pk, stateDictPickle, torchLegacy, torchZip, type PickledTensor } from '../fuzz/builders';
import { rejectsWith } from '../fuzz/expect';
import { fixture, openSafetensors } from './fixtures';

const PICKLE = (...parts: string[]) => fixture('pickle', ...parts);
const MARKER = '/tmp/mamba-scope-pickle-ran';

async function golden(key: 'mamba1_logits' | 'mamba2_logits') {
  const dump = await openSafetensors(PICKLE('golden.safetensors'));
  return { ids: (await dump.readNative('input_ids')).data, logits: (await dump.readFloat(key, 'float64')).data };
}

async function logitsOf(folder: string): Promise<Float64Array> {
  const model = await loadModelFolder(new NodeFolderStore(PICKLE(folder)), 'float64');
  const { ids } = await golden('mamba1_logits');
  return referenceForward(model, Array.from(ids, Number)).logits!.data;
}

/** A FileStore that counts the bytes read from each file. */
class CountingStore implements FileStore {
  readonly reads: { file: string; offset: number; length: number }[] = [];
  constructor(private readonly inner: FileStore) {}
  get name() {
    return this.inner.name;
  }
  async open(relativePath: string): Promise<ByteSource | null> {
    const source = await this.inner.open(relativePath);
    if (!source) return null;
    return { name: source.name, size: source.size, read: (offset, length) => (this.reads.push({ file: relativePath, offset, length }), source.read(offset, length)) };
  }
}

describe('formats: torch.save checkpoints (the shared fixtures)', function () {
  this.timeout(60_000);

  for (const [folder, key] of [['mamba1-hf-f32', 'mamba1_logits'], ['mamba1-hf-legacy', 'mamba1_logits'], ['mamba1-ssm', 'mamba1_logits'], ['mamba2-ssm', 'mamba2_logits']] as const) {
    // The issue asks for 1e-5; measured 4.9e-7 (Mamba-1) and 5.0e-7 (Mamba-2), so the bound is the
    // README's 1e-6 for transformers' outputs.
    it(`${folder}: the float64 reference gives transformers' logits within 1e-6`, async () => {
      const e = normalizedError(await logitsOf(folder), (await golden(key)).logits);
      assert.ok(e <= 1e-6, `normalized error ${e.toExponential(2)}`);
    });
  }

  it('mamba1-hf-bf16: its weights are the f32 weights rounded to bf16, and its logits within the bf16 bound', async () => {
    // golden.safetensors holds the f32 model's logits. The bf16 file is consistent with them when
    // its weights are exactly the f32 weights rounded to bf16 (checked tensor by tensor) and the
    // logits moved only by that rounding: normalized error within 3e-2, the bf16 bound of the
    // numerics workbench (measured 5.4e-3; transformers' own bf16 run of this model is 8.6e-3 off).
    const bf16 = await openCheckpoint(new NodeFolderStore(PICKLE('mamba1-hf-bf16')));
    const f32 = await openCheckpoint(new NodeFolderStore(PICKLE('mamba1-hf-f32')));
    assert.deepEqual(bf16.names().sort(), f32.names().sort());
    for (const name of bf16.names()) {
      assert.equal(bf16.info(name)!.dtype, 'BF16', name);
      const rounded = Float64Array.from((await f32.readFloat(name, 'float64')).data, roundBf16);
      assert.deepEqual((await bf16.readFloat(name, 'float64')).data, rounded, name);
    }
    const e = normalizedError(await logitsOf('mamba1-hf-bf16'), (await golden('mamba1_logits')).logits);
    assert.ok(e > 1e-4 && e <= 3e-2, `normalized error ${e.toExponential(2)}: the bf16 rounding shows, within its bound`);
  });

  it('the legacy file holds exactly the zip file tensors', async () => {
    const legacy = await openCheckpoint(new NodeFolderStore(PICKLE('mamba1-hf-legacy')));
    const zip = await openCheckpoint(new NodeFolderStore(PICKLE('mamba1-hf-f32')));
    assert.deepEqual(legacy.names(), zip.names());
    for (const name of zip.names()) assert.deepEqual(await legacy.readNative(name), await zip.readNative(name), name);
  });

  it('mamba1-ssm: lm_head.weight shares the embedding storage, which is read once and loaded as one tensor', async () => {
    const store = new CountingStore(new NodeFolderStore(PICKLE('mamba1-ssm')));
    const model = await loadModelFolder(store, 'float64');
    assert.ok(isLanguageModel(model));
    assert.equal(model.lmHead, model.embedding);
    const embeddingBytes = 1024 * 128 * 4;
    const reads = store.reads.filter((r) => r.file === 'pytorch_model.bin' && r.length === embeddingBytes);
    assert.equal(reads.length, 1, JSON.stringify(reads));
  });

  it('opens as a tensor file too (openTensorFile), zip and legacy', async () => {
    for (const folder of ['mamba1-hf-f32', 'mamba1-hf-legacy']) {
      const store = await openTensorFile(await NodeFileSource.open(PICKLE(folder, 'pytorch_model.bin')));
      assert.equal(store.names().length, 23);
      assert.deepEqual(store.info('backbone.embeddings.weight'), { dtype: 'F32', shape: [1024, 128] });
    }
  });
});

describe('formats: hostile torch.save files are refused by name, in under 1 s, and nothing runs', function () {
  before(() => rmSync(MARKER, { force: true }));
  after(() => assert.ok(!existsSync(MARKER), `${MARKER} exists: something ran`));

  // truncated-zip.bin is the first half of mamba1-hf-f32's file; built here from it (checked
  // against the shared file's hash) rather than stored twice.
  const truncatedZip = () => {
    const bytes = readFileSync(PICKLE('mamba1-hf-f32', 'pytorch_model.bin')).subarray(0, 732740);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), 'fd7fdc4b71d6386b6e6fa8c1d634f7287f7ca5f540403102a138eae51653d374');
    return new MemorySource(PICKLE('hostile', 'truncated-zip.bin'), bytes);
  };
  const file = async (name: string) => NodeFileSource.open(PICKLE('hostile', name));
  const CASES: [string, () => Promise<ByteSource>, RegExp][] = [
    ['exec-os-system.bin', () => file('exec-os-system.bin'), /archive\/data\.pkl, byte 37 \(GLOBAL\): forbidden global posix\.system/],
    ['exec-eval.bin', () => file('exec-eval.bin'), /archive\/data\.pkl, byte 13 \(GLOBAL\): forbidden global __builtin__\.eval/],
    ['raw-pickle-os-system.bin', () => file('raw-pickle-os-system.bin'), /pickle 1 \(magic number\), byte 2 \(GLOBAL\): forbidden global posix\.system/],
    ['missing-storage.bin', () => file('missing-storage.bin'), /uses storage 0, but the archive has no record pytorch_model\/data\/0 \(a missing storage\)/],
    ['truncated-storage.bin', () => file('truncated-storage.bin'), /tensor "backbone\.layers\.0\.mixer\.dt_proj\.bias" .* needs 1024 bytes of record pytorch_model\/data\/9, which has 341 \(truncated\?\)/],
    ['truncated-zip.bin', async () => truncatedZip(), /has no zip end-of-central-directory record \(truncated/],
  ];
  for (const [name, source, problem] of CASES) {
    it(name, async () => {
      const s = await source();
      const t0 = performance.now();
      await rejectsWith(openTensorFile(s), s.name, problem);
      const ms = performance.now() - t0;
      assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
      assert.ok(!existsSync(MARKER));
    });
  }

  it('the same through the model-folder loader (pytorch_model.bin)', async () => {
    for (const [name, problem] of [['exec-os-system.bin', /forbidden global posix\.system/], ['missing-storage.bin', /a missing storage/]] as const) {
      const store = new MemoryStore('folder', { 'pytorch_model.bin': readFileSync(PICKLE('hostile', name)) });
      await rejectsWith(openCheckpoint(store), 'folder/pytorch_model.bin', problem);
    }
  });
});

// --- hand-built files -----------------------------------------------------------------------------

const f32 = (xs: number[]) => elementBytes('f4', xs);
const t = (name: string, storage: string, shape: number[], extra: Partial<PickledTensor> = {}): PickledTensor => ({
  name, storage, storageClass: 'FloatStorage', numel: shape.reduce((a, b) => a * b, 1), shape, ...extra,
});
const zipStore = (tensors: PickledTensor[], storages: Record<string, Uint8Array>, opts: Parameters<typeof torchZip>[2] = {}) =>
  openTensorFile(new MemorySource('m.pt', torchZip(stateDictPickle(tensors), storages, opts)));

describe('formats: torch.save checkpoints (hand-built)', () => {
  it('honours strides and offsets: a transposed view and a slice are gathered row-major', async () => {
    const store = await zipStore(
      [t('m', '0', [2, 3]), t('mT', '0', [3, 2], { stride: [1, 3] }), t('col', '0', [2], { offset: 1, stride: [3] }), t('tail', '0', [2], { offset: 4 })],
      { 0: f32([0, 1, 2, 3, 4, 5]) },
    );
    const read = async (n: string) => Array.from((await store.readFloat(n, 'float64')).data);
    assert.deepEqual(await read('m'), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(await read('mT'), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(await read('col'), [1, 4]);
    assert.deepEqual(await read('tail'), [4, 5]);
    assert.deepEqual((await store.readNative('mT')).shape, [3, 2]);
  });

  it('reads f64, f16, bf16 and integer storages, nn.Parameters, nested dicts and empty tensors', async () => {
    const tensors = [
      t('d', 'a', [2], { storageClass: 'DoubleStorage' }), t('h', 'b', [2], { storageClass: 'HalfStorage' }), t('b', 'c', [2], { storageClass: 'BFloat16Storage' }),
      t('i', 'e', [2], { storageClass: 'LongStorage' }), t('p', 'f', [1], { parameter: true }), t('empty', 'g', [0, 4]),
    ];
    const bf16 = new Uint8Array([0x80, 0x3f, 0x40, 0xc0]); // 1, -3
    const storages = { a: elementBytes('f8', [0.1, -2]), b: Uint8Array.from(elementBytes('u2', [f16Bits(1.5), f16Bits(-0.5)])), c: bf16, e: elementBytes('i8', [-7, 9]), f: f32([42]), g: new Uint8Array(0) };
    const store = await zipStore(tensors, storages);
    const read = async (n: string) => Array.from((await store.readFloat(n, 'float64')).data);
    assert.deepEqual(await read('d'), [0.1, -2]);
    assert.deepEqual(await read('h'), [1.5, -0.5]);
    assert.deepEqual(await read('b'), [1, -3]);
    assert.deepEqual((await store.readNative('i')).data, BigInt64Array.from([-7n, 9n]));
    assert.deepEqual(await read('p'), [42]);
    assert.deepEqual((await store.readNative('empty')).shape, [0, 4]);
    assert.deepEqual(store.info('h'), { dtype: 'F16', shape: [2] });
    // {"model": {"w": tensor}} → "model.w"
    const inner = stateDictPickle([t('w', '0', [1])]).subarray(2, -1); // without its PROTO and STOP
    const nested = concat([pickle(pk.proto(), pk.emptyDict, pk.str('model')), inner, pickle(pk.setitem, pk.stop)]);
    assert.deepEqual((await openTensorFile(new MemorySource('n.pt', torchZip(nested, { 0: f32([1]) })))).names(), ['model.w']);
  });

  it('reads the legacy layout, storages in the order of its key list', async () => {
    const tensors = [t('w', '20', [2]), t('v', '10', [3])];
    const file = torchLegacy(stateDictPickle(tensors, { legacy: true }), [{ key: '10', elements: 3, data: f32([7, 8, 9]) }, { key: '20', elements: 2, data: f32([5, 6]) }]);
    const store = await openTensorFile(new MemorySource('old.pt', file));
    assert.deepEqual(Array.from((await store.readFloat('w', 'float64')).data), [5, 6]);
    assert.deepEqual(Array.from((await store.readFloat('v', 'float64')).data), [7, 8, 9]);
  });

  it('reads pytorch_model.bin.index.json shards like the safetensors index', async () => {
    const shard = (name: string, x: number) => torchZip(stateDictPickle([t(name, '0', [1])]), { 0: f32([x]) });
    const index = JSON.stringify({ weight_map: { a: 'pytorch_model-00001-of-00002.bin', b: 'pytorch_model-00002-of-00002.bin' } });
    const files = { 'pytorch_model.bin.index.json': new TextEncoder().encode(index), 'pytorch_model-00001-of-00002.bin': shard('a', 1), 'pytorch_model-00002-of-00002.bin': shard('b', 2) };
    const store = await openCheckpoint(new MemoryStore('dir', files));
    assert.deepEqual(await Promise.all(['a', 'b'].map(async (n) => (await store.readFloat(n, 'float64')).data[0])), [1, 2]);
    await rejectsWith(openCheckpoint(new MemoryStore('dir', { ...files, 'pytorch_model-00002-of-00002.bin': shard('c', 3) })), 'dir/pytorch_model-00002-of-00002.bin', /has no tensor "b", which .*index\.json places there/);
  });

  it('prefers safetensors when a folder has both, and names every file it looked for when it has none', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mamba-scope-torch-'));
    try {
      mkdirSync(path.join(dir, 'empty'));
      await rejectsWith(openCheckpoint(new NodeFolderStore(path.join(dir, 'empty'))), path.join(dir, 'empty'), /has no model weights \(none of model\.safetensors, model\.safetensors\.index\.json, pytorch_model\.bin, pytorch_model\.bin\.index\.json\)$/);
      writeFileSync(path.join(dir, 'pytorch_model.bin'), torchZip(stateDictPickle([t('from_torch', '0', [1])]), { 0: f32([1]) }));
      writeFileSync(path.join(dir, 'model.safetensors'), readFileSync(fixture('mamba1-tiny', 'model.safetensors')));
      assert.ok(!(await openCheckpoint(new NodeFolderStore(dir))).names().includes('from_torch'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('refuses each broken record with one line naming it', () => {
    const zip = (tensors: PickledTensor[], storages: Record<string, Uint8Array>, opts = {}) => torchZip(stateDictPickle(tensors), storages, opts);
    const CASES: [string, () => Uint8Array, RegExp][] = [
      ['a compressed storage record', () => zip([t('w', '0', [4])], { 0: f32([1, 2, 3, 4]) }, { method: 8 }), /record archive\/data\/0 is compressed \(deflate\); torch\.save stores storages uncompressed/],
      ['a missing storage', () => zip([t('w', '7', [1])], {}), /uses storage 7, but the archive has no record archive\/data\/7 \(a missing storage\)/],
      ['a storage too short for its tensor', () => zip([t('w', '0', [4])], { 0: f32([1, 2, 3]) }), /tensor "w" \(F32 \[4\], stride \[1\], offset 0\) needs 16 bytes of record archive\/data\/0, which has 12 \(truncated\?\)/],
      ['an offset past the storage', () => zip([t('w', '0', [1], { offset: 9 })], { 0: f32([1]) }), /tensor "w" .* needs 40 bytes/],
      ['a broadcast (stride 0) view', () => zip([t('w', '0', [1000000], { stride: [0] })], { 0: f32([1]) }), /tensor "w" .* has more elements than its bytes hold \(an expanded or overlapping view\)/],
      ['an unknown storage class', () => zip([t('w', '0', [1], { storageClass: 'ComplexFloatStorage' })], { 0: f32([1]) }), /forbidden global torch\.ComplexFloatStorage/],
      ['size and stride of different lengths', () => zip([t('w', '0', [2], { stride: [1, 1] })], { 0: f32([1, 2]) }), /\(REDUCE\): _rebuild_tensor_v2 size \[2\] and stride \[1, 1\] differ in length/],
      ['a state dict that is a list', () => torchZip(pickle(pk.proto(), pk.emptyList, pk.stop), {}), /archive\/data\.pkl holds a list, not a state dict of tensors/],
      ['a value that is not a tensor', () => torchZip(pickle(pk.proto(), pk.emptyDict, pk.str('epoch'), pk.int(3), pk.setitem, pk.stop), {}), /archive\/data\.pkl: "epoch" is an int, not a tensor/],
      ['a dict that contains itself', () => torchZip(pickle(pk.proto(), pk.emptyDict, pk.binput(0), pk.str('me'), pk.binget(0), pk.setitem, pk.stop), {}), /the dict at "me\." appears twice/],
      ['a persistent id that is not a storage', () => torchZip(pickle(pk.proto(), pk.mark, pk.str('module'), pk.tuple, pk.binpersid, pk.stop), {}), /\(BINPERSID\): a persistent id that is not a storage reference \("module"\)/],
      ['big-endian storages', () => torchZip(pickle(pk.proto(), pk.emptyDict, pk.stop), {}, { byteorder: 'big' }), /archive\/byteorder says "big"; only little-endian checkpoints are read/],
      ['two archives in one zip', () => buildZip(['a', 'b'].map((p) => ({ name: `${p}/data.pkl`, data: pickle(pk.proto(), pk.emptyDict, pk.stop) }))), /holds 2 torch archives \(a\/data\.pkl, b\/data\.pkl\); one is read/],
    ];
    for (const [label, bytes, problem] of CASES) it(label, () => rejectsWith(openTensorFile(new MemorySource('m.pt', bytes())), 'm.pt', problem));

    const legacy = (opts: { view?: boolean; littleEndian?: boolean; elements?: number; cut?: number; magic?: bigint; keys?: string[] } = {}) => {
      const pid = [pk.mark, pk.str('storage'), pk.global('torch', 'FloatStorage'), pk.str('1'), pk.str('cpu'), pk.int(2), opts.view ? pk.emptyTuple : pk.none, pk.tuple];
      const main = pickle(pk.proto(), pk.emptyDict, pk.str('w'), pk.global('torch._utils', '_rebuild_tensor_v2'), pk.mark, ...pid, pk.binpersid, pk.int(0), pk.mark, pk.int(2), pk.tuple, pk.mark, pk.int(1), pk.tuple, pk.newFalse, pk.emptyDict, pk.tuple, pk.reduce, pk.setitem, pk.stop);
      const file = torchLegacy(main, (opts.keys ?? ['1']).map((key) => ({ key, elements: opts.elements ?? 2, data: f32([1, 2]) })), { littleEndian: opts.littleEndian });
      return opts.cut ? file.subarray(0, file.length - opts.cut) : file;
    };
    const LEGACY: [string, () => Uint8Array, RegExp][] = [
      ['legacy: a storage view (torch < 0.4)', () => legacy({ view: true }), /storage 1 is a view of another storage \(torch < 0\.4\), which is not read/],
      ['legacy: a big-endian writer', () => legacy({ littleEndian: false }), /was written on a big-endian machine/],
      ['legacy: a storage count past the end', () => legacy({ elements: 3 }), /storage 1 declares 3 F32 elements at byte \d+, more than the rest of the file holds \(truncated\?\)/],
      ['legacy: storage bytes cut short', () => legacy({ cut: 1 }), /storage 1 declares 2 F32 elements .*truncated/],
      ['legacy: a storage the key list lacks', () => legacy({ keys: [] }), /pickle 4 \(state dict\) uses storage 1, which the file does not hold \(a missing storage\)/],
      ['legacy: a key no tensor uses', () => legacy({ keys: ['1', '2'] }), /lists storage 2, which no tensor uses/],
      ['legacy: no magic number', () => pickle(pk.proto(), pk.int(5), pk.stop), /is a pickle but not a torch\.save checkpoint \(no legacy magic number\)/],
      ['legacy: cut inside the pickles', () => legacy().subarray(0, 200), /pickle 4 \(state dict\), byte \d+ \(.*\): the pickle ends here, before its STOP \(truncated\?\)/],
    ];
    for (const [label, bytes, problem] of LEGACY) it(label, () => rejectsWith(openTensorFile(new MemorySource('old.pt', bytes())), 'old.pt', problem));
  });

  it('reads a legacy file whose pickles are longer than the first window', async () => {
    const many = Array.from({ length: 3000 }, (_, i) => t(`layer.${i}.weight`, String(i), [1]));
    const file = torchLegacy(stateDictPickle(many, { legacy: true }), many.map((x, i) => ({ key: x.storage, elements: 1, data: f32([i]) })));
    assert.ok(file.length > 1 << 17);
    const store = await TorchCheckpoint.open(new MemorySource('big.pt', file));
    assert.equal((await store.readFloat('layer.2999.weight', 'float64')).data[0], 2999);
  });
});
