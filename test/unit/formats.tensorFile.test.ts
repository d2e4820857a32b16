import * as assert from 'node:assert/strict';
import { zipSync } from 'fflate';
import { LimitError } from '../../src/engine/errors';
import { MemorySource } from '../../src/engine/io';
import { encodeNpy } from '../../src/engine/formats/npy';
import { encodeSafetensors } from '../../src/engine/formats/safetensors';
import { openTensorFile } from '../../src/engine/formats/tensorFile';
import { elementBytes, pickle, pk, stateDictPickle, torchLegacy, torchZip } from '../fuzz/builders';
import { rejectsWith } from '../fuzz/expect';

const npy = encodeNpy({ shape: [3], data: Float32Array.from([1, 2, 3]) });
const safetensors = encodeSafetensors([{ name: 'w', tensor: { shape: [2], data: Float32Array.from([4, 5]) } }]);
const npz = zipSync({ 'm.npy': npy });

function open(name: string, bytes: Uint8Array, options = {}) {
  return openTensorFile(new MemorySource(name, bytes), options);
}

describe('formats: openTensorFile', () => {
  it('picks the reader by magic bytes, whatever the extension says', async () => {
    assert.deepEqual((await open('weights.bin', safetensors)).names(), ['w']);
    assert.deepEqual((await open('dir/acts.dat', npy)).names(), ['acts']);
    assert.deepEqual((await open('arrays.zip', npz)).names(), ['m']);
    assert.deepEqual(Array.from((await (await open('a.safetensors', safetensors)).readFloat('w', 'float64')).data), [4, 5]);
  });

  it('passes the npz member limit through', async () => {
    const store = await open('x.npz', npz, { maxMemberBytes: 10 });
    await rejectsWith(store.readNative('m'), 'x.npz', /over the 10-byte limit/, LimitError);
  });

  describe('reads torch.save files (zip and legacy pickle) without running them', () => {
    const tensor = { name: 'w', storage: '0', storageClass: 'FloatStorage', numel: 2, shape: [2] };
    const storage = elementBytes('f4', [4, 5]);
    it('torch.save zip format (archive/data.pkl)', async () => {
      const store = await open('ckpt/model.pt', torchZip(stateDictPickle([tensor]), { 0: storage }));
      assert.deepEqual(Array.from((await store.readFloat('w', 'float64')).data), [4, 5]);
    });
    it('legacy pickle (protocol 2)', async () => {
      const store = await open('model.pt', torchLegacy(stateDictPickle([tensor], { legacy: true }), [{ key: '0', elements: 2, data: storage }]));
      assert.deepEqual(Array.from((await store.readFloat('w', 'float64')).data), [4, 5]);
    });
    it('a bare pickle that would call os.system is refused naming the global', () =>
      rejectsWith(open('model.pt', pickle(pk.proto(), pk.global('posix', 'system'), pk.str('touch /tmp/x'), pk.tuple1, pk.reduce, pk.stop)), 'model.pt', /forbidden global posix\.system/));
    it('a zip with data.pkl is a torch file, not an npz, even when its pickle is broken', () =>
      rejectsWith(open('ckpt/model.pt', zipSync({ 'archive/data.pkl': new Uint8Array([0x80, 2]), 'archive/data/0': new Uint8Array(8) })), 'ckpt/model.pt', /archive\/data\.pkl, byte 2 .*before its STOP \(truncated\?\)/));
    it('a .pt/.pth/.bin/.ckpt file that is nothing we read', async () => {
      for (const ext of ['.pt', '.pth', '.bin', '.ckpt']) {
        await rejectsWith(open(`model${ext}`, new Uint8Array([1, 2, 3, 4])), `model${ext}`, new RegExp(`PyTorch extension \\(\\${ext}\\) but is neither a torch\\.save zip, a pickle nor safetensors \\(it starts with bytes 01 02 03 04\\)`));
      }
    });
  });

  it('reports broken files through the reader their magic or extension names', async () => {
    await rejectsWith(open('x.safetensors', Uint8Array.from([2, 0, 0, 0, 0, 0, 0, 0, 0x5b, 0x5d])), 'x.safetensors', /header is not a JSON object/);
    await rejectsWith(open('x.npy', new TextEncoder().encode('hello world, no magic')), 'x.npy', /does not start with the .npy magic/);
    await rejectsWith(open('x.npz', new Uint8Array(30)), 'x.npz', /no zip end-of-central-directory record/);
    await rejectsWith(open('x.npy', npy.subarray(0, npy.length - 1)), 'x.npy', /11 data bytes .* needs 12 .*truncated/);
  });

  it('names unknown and empty files', async () => {
    await rejectsWith(open('notes.txt', new TextEncoder().encode('GGUF....')), 'notes.txt', /is not a safetensors, .npy, .npz or torch.save file \(it starts with bytes 47 47 55 46 2e 2e 2e 2e\)/);
    await rejectsWith(open('empty', new Uint8Array(0)), 'empty', /it is empty/);
  });
});
