import * as assert from 'node:assert/strict';
import { closeSync, openSync, rmSync, truncateSync, writeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/engine/formats/safetensors';
import { openTensorFile } from '../../src/engine/formats/tensorFile';
import { NodeFileSource } from '../../src/node/files';
import { safetensorsBytes } from '../fuzz/builders';

/**
 * Issue 7: a 20 GB checkpoint opens, lists and reads one tensor in bounded memory. The file is
 * sparse (its data area a hole made by truncate), so the test costs no disk; resident memory is
 * measured, never time.
 */
describe('formats: bounded memory on a sparse 20 GB safetensors file', () => {
  const SIZE = 20e9;
  const file = path.join(os.tmpdir(), `mamba-scope-sparse-${process.pid}.safetensors`);
  const layers = 40;

  before(() => {
    // 40 "layers" of ~500 MB each after a small tensor: a realistic header over a 20 GB data area.
    const small = { dtype: 'F32', shape: [4], data_offsets: [0, 16] };
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' }, small };
    const headerBytes = 8192;
    const dataSize = SIZE - 8 - headerBytes;
    const per = Math.floor((dataSize - 16) / layers / 4) * 4;
    for (let i = 0; i < layers; i++) header[`layers.${i}.weight`] = { dtype: 'F32', shape: [per / 4], data_offsets: [16 + i * per, 16 + (i + 1) * per] };
    let text = JSON.stringify(header);
    text += ' '.repeat(headerBytes - text.length);
    const head = safetensorsBytes(text, new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer));
    const fd = openSync(file, 'w');
    writeSync(fd, head);
    closeSync(fd);
    truncateSync(file, SIZE);
  });
  after(() => rmSync(file, { force: true }));

  it('opens it, lists its tensors and reads one with under 200 MB of resident memory growth', async () => {
    const rssBefore = process.memoryUsage.rss();
    const st = await SafetensorsFile.open(await NodeFileSource.open(file));
    assert.equal(st.names().length, layers + 1);
    assert.deepEqual(Array.from((await st.readFloat('small', 'float64')).data), [1, 2, 3, 4]);
    const viaSniffer = await openTensorFile(await NodeFileSource.open(file));
    assert.deepEqual(viaSniffer.info('layers.39.weight')?.dtype, 'F32');
    assert.deepEqual(Array.from((await viaSniffer.readNative('small')).data as Float32Array), [1, 2, 3, 4]);
    const growth = process.memoryUsage.rss() - rssBefore;
    assert.ok(growth < 200e6, `resident memory grew by ${(growth / 1e6).toFixed(1)} MB`);
  });
});
