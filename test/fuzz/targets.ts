/**
 * The readers the fuzz suite attacks. Each target says how to run its reader on raw bytes the
 * way the extension does (open, list, read everything), how to generate inputs from scratch,
 * and where its format keeps sizes and JSON so the mutators can aim there; its seeds live in
 * corpus/<name>/ and every input that ever failed in regressions/<name>/.
 *
 * Adding a reader (e.g. annotation files): write a FuzzTarget next to these, add it to
 * FUZZ_TARGETS, put a few small valid files in corpus/<name>/. `npm run fuzz` and the short
 * mode in test/unit/formats.fuzz.test.ts pick it up from the list.
 */
import fc from 'fast-check';
import { decodeUtf8, MemorySource } from '../../src/engine/io';
import { dumpLayers, dumpTokens } from '../../src/engine/formats/dump';
import { DTYPE_BITS } from '../../src/engine/formats/dtypes';
import { openTensorFile } from '../../src/engine/formats/tensorFile';
import { SafetensorsFile, type TensorStore } from '../../src/engine/formats/safetensors';
import { parseModelConfig } from '../../src/engine/model/config';
import { MambaTokenizer } from '../../src/engine/tokenizer';
import { annotationsCsvTarget, annotationsTarget } from './annotationTargets';
import { buildZip, concat, npyBytes, npyDict, pickle, pk, safetensorsBytes, stateDictPickle, torchLegacy, torchZip, type PickledTensor, type ZipMemberSpec } from './builders';
import type { FormatShape, LengthField, TextPart } from './mutate';

export interface FuzzTarget extends FormatShape {
  /** Also the folder name under corpus/ and regressions/. */
  readonly name: string;
  /** Inputs built from scratch (the mutated seeds come from corpus/<name>/). */
  readonly generate: fc.Arbitrary<Uint8Array>;
  /** Runs the reader; it must either finish or throw a MambaScopeError. */
  run(input: Uint8Array): Promise<void>;
  /** ArrayBuffer bytes a run may allocate for an input of `n` bytes (more = a size taken on trust). */
  allocationBudget(n: number): number;
}

const MiB = 1 << 20;
/** Decoding widens at most 16× (F4 → float64); anything beyond that was sized from a claim. */
const decodeBudget = (n: number) => 16 * MiB + 64 * n;

async function readEverything(store: TensorStore): Promise<void> {
  for (const name of store.names()) {
    store.info(name);
    await store.readNative(name);
    await store.readFloat(name, 'float64');
  }
}

const latin1 = new TextDecoder('latin1');
const lossyUtf8 = new TextDecoder('utf-8');
const encodeText = (s: string) => new TextEncoder().encode(s);

// --- safetensors and dumps ---------------------------------------------------------------------

function safetensorsHeaderPart(input: Uint8Array): TextPart | null {
  if (input.length < 8) return null;
  const declared = new DataView(input.buffer, input.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(input.length - 8)) return null;
  const end = 8 + Number(declared);
  return {
    text: lossyUtf8.decode(input.subarray(8, end)),
    rebuild: (text) => {
      const json = encodeText(text);
      const len = new Uint8Array(8);
      new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
      return concat([len, json, input.subarray(end)]);
    },
  };
}

const SAFETENSORS_DTYPES = Object.keys(DTYPE_BITS);

/** Headers of random tensors; "consistent" ones get offsets that tile the data area exactly. */
function safetensorsGenerator(names: fc.Arbitrary<string>): fc.Arbitrary<Uint8Array> {
  const dim = fc.oneof({ arbitrary: fc.nat(6), weight: 8 }, { arbitrary: fc.constantFrom(-1, 0.5, 2 ** 32, 2 ** 53, 1e300), weight: 1 });
  const entry = fc.record({
    name: names,
    dtype: fc.oneof({ arbitrary: fc.constantFrom(...SAFETENSORS_DTYPES), weight: 8 }, { arbitrary: fc.jsonValue({ maxDepth: 1 }), weight: 1 }),
    shape: fc.array(dim, { maxLength: 4 }),
    offsets: fc.array(fc.oneof(fc.nat(300), fc.integer()), { minLength: 0, maxLength: 3 }),
  });
  return fc
    .record({
      entries: fc.array(entry, { maxLength: 6 }),
      metadata: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof({ arbitrary: fc.string(), weight: 30 }, { arbitrary: fc.jsonValue({ maxDepth: 1 }), weight: 1 }), { maxKeys: 4 })),
      consistent: fc.boolean(),
      extraData: fc.integer({ min: -4, max: 64 }),
      fill: fc.nat(255),
    })
    .map(({ entries, metadata, consistent, extraData, fill }) => {
      const header: Record<string, unknown> = {};
      if (metadata) header.__metadata__ = metadata;
      let offset = 0;
      for (const e of entries) {
        let offsets: unknown = e.offsets;
        const bits = DTYPE_BITS[e.dtype as keyof typeof DTYPE_BITS];
        if (consistent && bits) {
          const bytes = Math.ceil((e.shape.reduce((a, b) => a * Math.max(0, Math.trunc(b)), 1) * bits) / 8);
          if (bytes > 4096) continue;
          offsets = [offset, offset + bytes];
          offset += bytes;
        }
        header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: offsets };
      }
      const dataLen = Math.max(0, offset + extraData);
      return safetensorsBytes(header, Uint8Array.from({ length: dataLen }, (_, i) => (i * 131 + fill) & 0xff));
    });
}

const safetensorsShape: FormatShape = {
  lengthFields: () => [{ at: 0, width: 8 }],
  textPart: safetensorsHeaderPart,
};

const safetensors: FuzzTarget = {
  name: 'safetensors',
  ...safetensorsShape,
  generate: safetensorsGenerator(fc.oneof(fc.string({ maxLength: 10 }), fc.constant('__metadata__'))),
  run: async (input) => readEverything(await openTensorFile(new MemorySource('fuzz.safetensors', input))),
  allocationBudget: decodeBudget,
};

const DUMP_NAMES = ['input_ids', 'logits', 'hf_logits', 'layers.0.delta', 'layers.1.h', 'layers.1.h_tokens', 'layers.99999999999999999999.y', 'layers.-1.B', 'layers.0.hidden_attention'];

const dump: FuzzTarget = {
  name: 'dump',
  ...safetensorsShape,
  generate: safetensorsGenerator(fc.oneof(fc.constantFrom(...DUMP_NAMES), fc.string({ maxLength: 10 }))),
  run: async (input) => {
    const store = await SafetensorsFile.open(new MemorySource('fuzz-dump.safetensors', input));
    dumpLayers(store);
    dumpTokens(store);
    await readEverything(store);
  },
  allocationBudget: decodeBudget,
};

// --- .npy -----------------------------------------------------------------------------------------

function npyHeaderPart(input: Uint8Array): TextPart | null {
  if (input.length < 12) return null;
  const v1 = input[6] === 1;
  const start = v1 ? 10 : 12;
  const v = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const len = v1 ? v.getUint16(8, true) : v.getUint32(8, true);
  if (start + len > input.length) return null;
  return {
    text: latin1.decode(input.subarray(start, start + len)),
    rebuild: (text) => {
      const out = concat([input.subarray(0, start), Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff), input.subarray(start + len)]);
      const w = new DataView(out.buffer);
      if (v1) w.setUint16(8, Math.min(text.length, 0xffff), true);
      else w.setUint32(8, text.length, true);
      return out;
    },
  };
}

const NPY_DESCRS = ['<f2', '>f2', '<f4', '>f4', '<f8', '>f8', '|i1', '<i2', '>i4', '<i8', '>i8', '|u1', '<u2', '>u4', '<u8', '|b1', '=f4', '|f4', '<c8', '|O', '<M8[ns]', '|S3'];

const npyGenerator = fc
  .record({
    descr: fc.oneof({ arbitrary: fc.constantFrom(...NPY_DESCRS), weight: 6 }, { arbitrary: fc.string({ maxLength: 4 }), weight: 1 }),
    fortran: fc.boolean(),
    shape: fc.array(fc.oneof({ arbitrary: fc.nat(5), weight: 10 }, { arbitrary: fc.constantFrom(2 ** 31, 2 ** 53, 1e20), weight: 1 }), { maxLength: 4 }),
    version: fc.constantFrom<1 | 2 | 3>(1, 2, 3),
    dataDelta: fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.integer({ min: -9, max: 9 }), weight: 1 }),
    header: fc.option(fc.string({ maxLength: 80 }), { freq: 8 }),
  })
  .map(({ descr, fortran, shape, version, dataDelta, header }) => {
    const size = Number(descr.match(/\d+/)?.[0] ?? 1);
    const count = shape.reduce((a, b) => a * b, 1);
    const dataLen = Math.max(0, Math.min(4096, count * size) + dataDelta);
    return npyBytes(header ?? npyDict(descr, fortran, shape), Uint8Array.from({ length: dataLen }, (_, i) => (i * 29) & 0xff), { version });
  });

const npy: FuzzTarget = {
  name: 'npy',
  lengthFields: (input) => [{ at: 8, width: input[6] === 1 ? 2 : 4 }],
  textPart: npyHeaderPart,
  generate: npyGenerator,
  run: async (input) => readEverything(await openTensorFile(new MemorySource('fuzz.npy', input))),
  allocationBudget: decodeBudget,
};

// --- .npz -----------------------------------------------------------------------------------------

/** The size, count and offset fields of every zip record found in the input. */
function zipLengthFields(input: Uint8Array): LengthField[] {
  const fields: LengthField[] = [];
  const v = new DataView(input.buffer, input.byteOffset, input.byteLength);
  for (let i = 0; i + 4 <= input.length; i++) {
    if (input[i] !== 0x50 || input[i + 1] !== 0x4b) continue;
    const sig = v.getUint32(i, true);
    const add = (...list: [number, 2 | 4 | 8][]) => list.forEach(([at, width]) => fields.push({ at: i + at, width }));
    if (sig === 0x04034b50) add([18, 4], [22, 4], [26, 2], [28, 2]);
    else if (sig === 0x02014b50) add([20, 4], [24, 4], [28, 2], [30, 2], [32, 2], [42, 4]);
    else if (sig === 0x06054b50) add([10, 2], [12, 4], [16, 4], [20, 2]);
    else if (sig === 0x06064b50) add([32, 8], [40, 8], [48, 8]);
    else if (sig === 0x07064b50) add([8, 8]);
  }
  return fields;
}

const npzGenerator = fc
  .record({
    members: fc.array(
      fc.record({
        name: fc.oneof(fc.constantFrom('a.npy', 'b.npy', 'dir/c.npy', 'archive/data.pkl', 'x.txt'), fc.string({ maxLength: 8 })),
        data: fc.oneof({ arbitrary: npyGenerator, weight: 4 }, { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 }),
        method: fc.constantFrom<0 | 8>(0, 8),
        zip64: fc.boolean(),
        lie: fc.option(fc.record({ crc: fc.option(fc.nat()), uncompressedSize: fc.option(fc.constantFrom(0, 1, 100, 2 ** 20, 2 ** 32 - 1)), flags: fc.option(fc.constantFrom(1, 8)) }), { freq: 4 }),
      }),
      { maxLength: 4 },
    ),
    zip64End: fc.boolean(),
  })
  .map(({ members, zip64End }) =>
    buildZip(
      members.map((m): ZipMemberSpec => ({
        name: m.name,
        data: m.data,
        method: m.method,
        zip64: m.zip64,
        crc: m.lie?.crc ?? undefined,
        uncompressedSize: m.lie?.uncompressedSize ?? undefined,
        flags: m.lie?.flags ?? undefined,
      })),
      { zip64End },
    ),
  );

const npz: FuzzTarget = {
  name: 'npz',
  lengthFields: zipLengthFields,
  generate: npzGenerator,
  run: async (input) => readEverything(await openTensorFile(new MemorySource('fuzz.npz', input), { maxMemberBytes: 64 * MiB })),
  // A deflated member may honestly inflate 1032×; the reader refuses to believe more than that.
  allocationBudget: (n) => 16 * MiB + 1100 * n,
};

// --- torch.save checkpoints -------------------------------------------------------------------

/** The zip records' fields, and the lengths of the pickle's BINUNICODE strings and legacy storage counts. */
function torchLengthFields(input: Uint8Array): LengthField[] {
  const fields = zipLengthFields(input);
  const v = new DataView(input.buffer, input.byteOffset, input.byteLength);
  for (let i = 0; i + 5 <= input.length; i++) {
    if (input[i] === 0x58 && v.getUint32(i + 1, true) < 4096) fields.push({ at: i + 1, width: 4 });
  }
  return fields;
}

const STORAGE_CLASSES = ['FloatStorage', 'HalfStorage', 'BFloat16Storage', 'DoubleStorage', 'LongStorage', 'BoolStorage', 'ByteStorage', 'ComplexFloatStorage'];
const STORAGE_BYTES: Record<string, number> = { FloatStorage: 4, HalfStorage: 2, BFloat16Storage: 2, DoubleStorage: 8, LongStorage: 8, BoolStorage: 1, ByteStorage: 1 };

/** A few opcodes (some forbidden, some misused) dropped into a pickle, to reach the refusals. */
const strayOps = fc.array(
  fc.constantFrom(pk.mark, pk.stop, pk.none, pk.emptyDict, pk.emptyList, pk.emptyTuple, pk.tuple1, pk.reduce, pk.build, pk.setitem, pk.append, pk.binget(1), pk.global('posix', 'system'), pk.global('collections', 'OrderedDict'), [0x69], [0x93], [0x95]),
  { maxLength: 3 },
);

/** State dicts of random views (shapes, strides, offsets, classes) over storages sized right or not, in either layout. */
const torchGenerator = fc
  .record({
    legacy: fc.boolean(),
    tensors: fc.array(
      fc.record({
        name: fc.oneof(fc.constantFrom('w', 'backbone.embeddings.weight', 'lm_head.weight', 'a.b'), fc.string({ maxLength: 6 })),
        storage: fc.constantFrom('0', '1', '2'),
        storageClass: fc.oneof({ arbitrary: fc.constantFrom(...STORAGE_CLASSES), weight: 8 }, { arbitrary: fc.string({ maxLength: 6 }), weight: 1 }),
        shape: fc.array(fc.oneof({ arbitrary: fc.nat(4), weight: 8 }, { arbitrary: fc.constantFrom(2 ** 31, 2 ** 40), weight: 1 }), { maxLength: 3 }),
        strideKind: fc.constantFrom('row-major', 'row-major', 'random', 'random', 'mismatched'),
        strides: fc.array(fc.nat(6), { maxLength: 3 }),
        offset: fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.nat(16), weight: 1 }),
        parameter: fc.boolean(),
      }),
      { maxLength: 5 },
    ),
    storageBytes: fc.array(fc.oneof({ arbitrary: fc.constant(-1), weight: 3 }, { arbitrary: fc.nat(96), weight: 1 }), { minLength: 3, maxLength: 3 }),
    method: fc.constantFrom<0 | 8>(0, 0, 0, 8),
    byteorder: fc.constantFrom('little', 'little', 'little', 'little', 'little', 'big'),
    stray: fc.option(fc.tuple(fc.nat(), strayOps), { freq: 4 }),
  })
  .map(({ legacy, tensors, storageBytes, method, byteorder, stray }) => {
    const keys = ['0', '1', '2'];
    const elementSize = (key: string) => STORAGE_BYTES[tensors.find((t) => t.storage === key)?.storageClass ?? ''] ?? 4;
    // -1: exactly as many elements as the largest view of the storage needs.
    const elements = keys.map((key, k) => {
      if (storageBytes[k] >= 0) return Math.floor(storageBytes[k] / elementSize(key));
      const needs = tensors.filter((t) => t.storage === key).map((t) => t.offset + t.shape.reduce((a, b) => a * b, 1));
      return Math.min(4096, Math.max(0, ...needs));
    });
    const stride = (t: (typeof tensors)[number]) => (t.strideKind === 'row-major' ? undefined : t.strideKind === 'random' ? t.shape.map((_, d) => t.strides[d] ?? 1) : t.strides);
    const pickled: PickledTensor[] = tensors.map((t) => ({ ...t, numel: elements[Number(t.storage)], stride: stride(t) }));
    let dataPkl = stateDictPickle(pickled, { legacy });
    if (stray) {
      const at = 2 + (stray[0] % Math.max(1, dataPkl.length - 2));
      dataPkl = concat([dataPkl.subarray(0, at), pickle(...stray[1]), dataPkl.subarray(at)]);
    }
    const used = keys.filter((key) => tensors.some((t) => t.storage === key));
    const data = (key: string) => Uint8Array.from({ length: elements[Number(key)] * elementSize(key) }, (_, i) => (i * 53 + Number(key)) & 0xff);
    if (legacy) return torchLegacy(dataPkl, used.map((key) => ({ key, elements: elements[Number(key)], data: data(key) })));
    return torchZip(dataPkl, Object.fromEntries(used.map((key) => [key, data(key)])), { method, byteorder });
  });

const torch: FuzzTarget = {
  name: 'torch',
  lengthFields: torchLengthFields,
  generate: torchGenerator,
  run: async (input) => readEverything(await openTensorFile(new MemorySource('fuzz.pt', input))),
  allocationBudget: decodeBudget,
};

// --- JSON files -------------------------------------------------------------------------------------

const wholeText = (input: Uint8Array): TextPart => ({ text: lossyUtf8.decode(input), rebuild: encodeText });
const jsonFile: FormatShape = { textPart: wholeText, textual: true };

const CONFIG_KEYS = [
  'model_type', 'hidden_size', 'num_hidden_layers', 'intermediate_size', 'expand', 'state_size', 'conv_kernel', 'time_step_rank',
  'vocab_size', 'layer_norm_epsilon', 'use_conv_bias', 'use_bias', 'tie_word_embeddings', 'num_heads', 'head_dim', 'n_groups',
  'chunk_size', 'time_step_limit', 'd_model', 'n_layer', 'ssm_cfg', 'pad_vocab_size_multiple', 'architecture', 'd_state', 'norm_epsilon',
];
const jsonish = fc.oneof(
  { arbitrary: fc.constantFrom(0, 1, 2, 16, 64, 128, -1, 0.5, 2 ** 24 + 1, 2 ** 53, 'auto', 'mamba', 'mamba2', 'seed-simple', 'Mamba1', 'Mamba2', true, null, [0, 1], { __float__: 'Infinity' }, { __float__: 'x' }), weight: 4 },
  { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
);

const config: FuzzTarget = {
  name: 'config',
  ...jsonFile,
  generate: fc
    .tuple(
      fc.constantFrom('mamba', 'mamba2', 'seed-simple', undefined, 'llama'),
      fc.dictionary(fc.oneof(fc.constantFrom(...CONFIG_KEYS), fc.string({ maxLength: 6 })), fc.oneof({ arbitrary: jsonish, weight: 4 }, { arbitrary: fc.dictionary(fc.constantFrom('layer', 'expand', 'd_state', 'headdim', 'ngroups', 'dt_limit', 'dt_rank', 'd_conv'), jsonish), weight: 1 }), { maxKeys: 14 }),
    )
    .map(([modelType, obj]) => encodeText(JSON.stringify({ model_type: modelType, ...obj }))),
  run: async (input) => {
    parseModelConfig(decodeUtf8(input, 'config.json'), 'config.json');
  },
  allocationBudget: decodeBudget,
};

const TOKENIZER_SAMPLE = 'def f(x):\n    return x ** 2  # é 漢字 🙂 unknownword\t\r\n';

const tokenizerGenerator = fc
  .record({
    type: fc.constantFrom('BPE', 'WordLevel', 'WordPiece', 'Unigram', 'Nope', 1),
    vocab: fc.oneof(fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.nat(40), fc.integer(), fc.string())), fc.array(fc.tuple(fc.string({ maxLength: 4 }), fc.double())), fc.jsonValue({ maxDepth: 1 })),
    merges: fc.oneof(fc.array(fc.string({ maxLength: 5 })), fc.array(fc.tuple(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 }))), fc.jsonValue({ maxDepth: 1 })),
    unk: fc.option(fc.string({ maxLength: 5 })),
    pre: fc.constantFrom(null, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, { type: 'Whitespace' }, { type: 'Split', pattern: { Regex: '(' }, behavior: 'Isolated', invert: false }, { type: 'Sequence', pretokenizers: [{}] }, 'x'),
    decoder: fc.constantFrom(null, { type: 'ByteLevel' }, { type: 'WordPiece', prefix: '##' }, { type: 'Unknown' }),
    normalizer: fc.constantFrom(null, { type: 'Lowercase' }, { type: 'NFKC' }, { type: 'Replace', pattern: { String: '' }, content: 'x' }, { type: 'Sequence', normalizers: 7 }),
    added: fc.array(fc.record({ id: fc.integer({ min: -1, max: 50 }), content: fc.string({ maxLength: 5 }), special: fc.boolean() }), { maxLength: 3 }),
  })
  .map((t) =>
    encodeText(JSON.stringify({
      version: '1.0', truncation: null, padding: null, added_tokens: t.added, normalizer: t.normalizer, pre_tokenizer: t.pre, post_processor: null, decoder: t.decoder,
      model: { type: t.type, vocab: t.vocab, merges: t.merges, unk_token: t.unk, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false },
    })),
  );

const tokenizer: FuzzTarget = {
  name: 'tokenizer',
  ...jsonFile,
  generate: tokenizerGenerator,
  run: async (input) => {
    const tok = MambaTokenizer.fromJson(decodeUtf8(input, 'tokenizer.json'), 'tokenizer.json');
    const { ids } = tok.encode(TOKENIZER_SAMPLE);
    if (ids.length) tok.decode(ids);
    tok.tokenText(0);
    tok.tokenText(tok.vocabSize + 5);
  },
  allocationBudget: decodeBudget,
};

/** Every fuzzed reader; add new ones here (see the top of this file). */
export const FUZZ_TARGETS: readonly FuzzTarget[] = [safetensors, npy, npz, torch, config, tokenizer, dump, annotationsTarget, annotationsCsvTarget];
