/**
 * Writes the hand-built seeds of the fuzz corpus (run once with `npx tsx test/fuzz/corpus/makeSeeds.ts`;
 * the outputs are committed). numpy-written .npy/.npz seeds come from make_numpy_seeds.py.
 * Seeds are small and valid: the fuzzer mutates them into the broken files.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { zipSync } from 'fflate';
import { DUMP_FORMAT } from '../../../src/engine/formats/dump';
import { encodeNpy } from '../../../src/engine/formats/npy';
import { encodeSafetensors } from '../../../src/engine/formats/safetensors';
import { buildZip, safetensorsBytes, stateDictPickle, torchLegacy, torchZip, type PickledTensor } from '../builders';

const here = __dirname;
const root = path.join(here, '../../..');

function write(dir: string, name: string, bytes: Uint8Array | string): void {
  mkdirSync(path.join(here, dir), { recursive: true });
  writeFileSync(path.join(here, dir, name), bytes);
}

// safetensors: one tensor of every dtype, a typical small file, edge cases.
const dtypeBytes: [string, number[], number][] = [
  ['F64', [2], 16], ['F32', [2, 2], 16], ['F16', [3], 6], ['BF16', [3], 6], ['F8_E4M3', [4], 4], ['F8_E5M2', [4], 4],
  ['F8_E8M0', [2], 2], ['F4', [4], 2], ['I64', [1], 8], ['I32', [2], 8], ['I16', [2], 4], ['I8', [3], 3],
  ['U64', [1], 8], ['U32', [1], 4], ['U16', [2], 4], ['U8', [3], 3], ['BOOL', [2], 2],
];
{
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [dtype, shape, bytes] of dtypeBytes) {
    header[dtype.toLowerCase()] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  write('safetensors', 'every-dtype.safetensors', safetensorsBytes(header, Uint8Array.from({ length: offset }, (_, i) => (i * 37) & 0xff)));
}
write(
  'safetensors',
  'small-model.safetensors',
  encodeSafetensors(
    [
      { name: 'backbone.embeddings.weight', tensor: { shape: [4, 3], data: Float32Array.from({ length: 12 }, (_, i) => i / 4) } },
      { name: 'backbone.layers.0.mixer.A_log', tensor: { shape: [3, 2], data: new Float64Array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) } },
      { name: 'ids', tensor: { shape: [3], data: Int32Array.from([1, 2, 3]) } },
    ],
    { format: 'pt' },
  ),
);
write('safetensors', 'empty.safetensors', safetensorsBytes({}));
write('safetensors', 'zero-size.safetensors', safetensorsBytes({ a: { dtype: 'F32', shape: [0, 4], data_offsets: [0, 0] }, b: { dtype: 'U8', shape: [], data_offsets: [0, 1] } }, new Uint8Array([7])));

// npz built by fflate and by the zip builder (zip64 records) next to numpy's own.
const npyA = encodeNpy({ shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) });
const npyB = encodeNpy({ shape: [3], data: Int16Array.from([-1, 0, 1]) });
write('npz', 'fflate-stored.npz', zipSync({ 'a.npy': npyA, 'b.npy': npyB }, { level: 0 }));
write('npz', 'fflate-deflated.npz', zipSync({ 'a.npy': npyA, 'sub/b.npy': npyB }, { level: 6 }));
write('npz', 'zip64.npz', buildZip([{ name: 'a.npy', data: npyA, method: 8, zip64: true }, { name: 'b.npy', data: npyB, zip64: true }], { zip64End: true }));

// config.json of every layout the engine reads.
write('config', 'mamba1-tiny.json', readFileSync(path.join(root, 'test/fixtures/mamba1-tiny/config.json')));
write('config', 'mamba1-demo.json', readFileSync(path.join(root, 'assets/mamba1-demo/config.json')));
write('config', 'mamba2-tiny.json', readFileSync(path.join(root, 'test/fixtures/mamba2-tiny/config.json')));
write('config', 'state-spaces.json', JSON.stringify({ d_model: 768, n_layer: 24, vocab_size: 50277, ssm_cfg: {}, rms_norm: true, residual_in_fp32: true, fused_add_norm: true, pad_vocab_size_multiple: 8 }, null, 2));
write('config', 'state-spaces-mamba2.json', JSON.stringify({ d_model: 256, n_layer: 2, vocab_size: 1000, ssm_cfg: { layer: 'Mamba2', headdim: 32, ngroups: 1, dt_limit: [0, { __float__: 'Infinity' }] } }, null, 2));
write('config', 'seed-simple.json', JSON.stringify({ architecture: 'seed-simple', d_model: 64, d_state: 16 }));

// tokenizer.json: the fixture tokenizer cut down to its byte alphabet and first merges (fast to build).
{
  const full = JSON.parse(readFileSync(path.join(root, 'test/fixtures/mamba1-tiny/tokenizer.json'), 'utf8'));
  const vocab = Object.fromEntries(Object.entries(full.model.vocab as Record<string, number>).filter(([, id]) => id < 300));
  const merges = (full.model.merges as [string, string][]).filter(([a, b]) => a in vocab && b in vocab && a + b in vocab);
  write('tokenizer', 'byte-level-bpe.json', JSON.stringify({ ...full, model: { ...full.model, vocab, merges } }, null, 1));
  write('tokenizer', 'word-level.json', JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null,
    model: { type: 'WordLevel', vocab: { '[UNK]': 0, def: 1, return: 2, x: 3, '(': 4, ')': 5, ':': 6 }, unk_token: '[UNK]' },
  }, null, 1));
}

// A small mamba-dump/1.
write(
  'dump',
  'tiny-dump.safetensors',
  encodeSafetensors(
    [
      { name: 'input_ids', tensor: { shape: [3], data: Int32Array.from([5, 6, 7]) } },
      { name: 'logits', tensor: { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i - 6) } },
      { name: 'layers.0.delta', tensor: { shape: [3, 2], data: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) } },
      { name: 'layers.0.h', tensor: { shape: [1, 2, 2], data: Float32Array.from([1, 2, 3, 4]) } },
      { name: 'layers.0.h_tokens', tensor: { shape: [1], data: Int32Array.from([2]) } },
      { name: 'layers.1.y', tensor: { shape: [3, 2], data: new Float32Array(6) } },
    ],
    { format: DUMP_FORMAT, layout: 'LD', model: 'mamba1', tokens: JSON.stringify(['def', 'Ġf', '(']) },
  ),
);

// torch.save: hand-built state dicts in both layouts (f32, bf16, a tied pair, a transposed view, a
// parameter), next to the small hostile files of test/fixtures/pickle, real torch zips whose pickle
// calls os.system or eval.
{
  const tensors: PickledTensor[] = [
    { name: 'backbone.embedding.weight', storage: '0', storageClass: 'FloatStorage', numel: 6, shape: [3, 2] },
    { name: 'lm_head.weight', storage: '0', storageClass: 'FloatStorage', numel: 6, shape: [3, 2] },
    { name: 'transposed', storage: '0', storageClass: 'FloatStorage', numel: 6, shape: [2, 3], stride: [1, 2] },
    { name: 'norm.weight', storage: '1', storageClass: 'BFloat16Storage', numel: 2, shape: [2], parameter: true },
  ];
  const f32 = Float32Array.from([0, 1, 2, 3, 4, 5]);
  const storage0 = new Uint8Array(f32.buffer);
  const storage1 = new Uint8Array([0x80, 0x3f, 0x40, 0xc0]);
  write('torch', 'state-dict.pt', torchZip(stateDictPickle(tensors), { 0: storage0, 1: storage1 }));
  write('torch', 'state-dict-legacy.pt', torchLegacy(stateDictPickle(tensors, { legacy: true }), [{ key: '0', elements: 6, data: storage0 }, { key: '1', elements: 2, data: storage1 }]));
  for (const name of ['exec-os-system.bin', 'exec-eval.bin', 'raw-pickle-os-system.bin']) write('torch', name, readFileSync(path.join(root, 'test/fixtures/pickle/hostile', name)));
}
