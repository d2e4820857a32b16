/**
 * Mutations of valid seed files, as fast-check arbitraries (so runs are reproducible from a seed
 * and failures shrink): bit flips, byte overwrites, truncation, insertion, chunk duplication,
 * length-field rewrites at the positions a format keeps its sizes, and structure-aware JSON
 * mutations of a file's JSON part that keep the rest of the file consistent (a safetensors
 * header changes and its length prefix follows), so mutations reach past the first check.
 */
import fc from 'fast-check';
import { concat } from './builders';

/** Where a JSON (or other text) part of a file is, and how to put a changed one back. */
export interface TextPart {
  readonly text: string;
  /** The file with `text` in place of the part (length fields fixed up). */
  rebuild(text: string): Uint8Array;
}

/** A size or offset field: `width` little-endian bytes at `at`. */
export interface LengthField {
  readonly at: number;
  readonly width: 2 | 4 | 8;
}

/** What a target tells the mutators about its format. */
export interface FormatShape {
  lengthFields?(input: Uint8Array): LengthField[];
  textPart?(input: Uint8Array): TextPart | null;
  /** A text format (JSON): byte-level damage mostly yields "not valid JSON", so mutate the tree instead. */
  readonly textual?: boolean;
}

/** Values that break size checks: zero, one, sign and width boundaries, "too big to be real". */
const INTERESTING_SIZES = [0, 1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 1e8, 2 ** 32, 2 ** 53 - 1, 2 ** 53];

type Mutation = (input: Uint8Array, shape: FormatShape) => Uint8Array;

const position = fc.nat(); // taken modulo the input length when applied

const bitFlip = fc.tuple(position, fc.integer({ min: 0, max: 7 })).map(([p, bit]): Mutation => (input) => {
  if (input.length === 0) return input;
  const out = input.slice();
  out[p % out.length] ^= 1 << bit;
  return out;
});

const setByte = fc.tuple(position, fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x22, 0x7b, 0x2c)).map(([p, v]): Mutation => (input) => {
  if (input.length === 0) return input;
  const out = input.slice();
  out[p % out.length] = v;
  return out;
});

const truncate = position.map((p): Mutation => (input) => input.subarray(0, p % (input.length + 1)));

const insert = fc.tuple(position, fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([p, bytes]): Mutation => (input) => {
  const at = p % (input.length + 1);
  return concat([input.subarray(0, at), bytes, input.subarray(at)]);
});

const remove = fc.tuple(position, fc.integer({ min: 1, max: 64 })).map(([p, n]): Mutation => (input) => {
  const at = p % (input.length + 1);
  return concat([input.subarray(0, at), input.subarray(at + n)]);
});

/** Copies a chunk elsewhere: duplicated headers and records confuse parsers that scan. */
const duplicate = fc.tuple(position, position, fc.integer({ min: 1, max: 64 })).map(([from, to, n]): Mutation => (input) => {
  if (input.length === 0) return input;
  const start = from % input.length;
  const at = to % (input.length + 1);
  return concat([input.subarray(0, at), input.subarray(start, start + n), input.subarray(at)]);
});

function writeLength(out: Uint8Array, f: LengthField, value: number): void {
  if (f.at + f.width > out.length) return;
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (f.width === 2) v.setUint16(f.at, value & 0xffff, true);
  else if (f.width === 4) v.setUint32(f.at, value >>> 0, true);
  else v.setBigUint64(f.at, BigInt(Math.min(value, 2 ** 64 - 1)), true);
}

/** Rewrites a known size field (or, lacking any, 2/4/8 bytes anywhere) with an interesting value. */
const lengthField = fc
  .tuple(position, fc.oneof(fc.constantFrom(...INTERESTING_SIZES), fc.nat()), fc.constantFrom<-1 | 0 | 1>(-1, 0, 1), fc.constantFrom<2 | 4 | 8>(2, 4, 8), fc.boolean())
  .map(([p, value, delta, width, relative]): Mutation => (input, shape) => {
    const known = shape.lengthFields?.(input) ?? [];
    const field = known.length ? known[p % known.length] : { at: input.length ? p % input.length : 0, width };
    const out = input.slice();
    // Relative values (file size ± 1) pass the "inside the file" checks by one byte, or miss by one.
    writeLength(out, field, relative ? Math.max(0, input.length + delta) : value);
    return out;
  });

// --- JSON mutations -----------------------------------------------------------------------------

const INTERESTING_JSON: unknown[] = [
  0, -1, 1, 0.5, -0.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308, 1e-320, '', 'F32', 'BF16', 'auto', 'mamba', 'mamba2',
  'BPE', 'ByteLevel', null, true, false, [], {}, [0], [1, 2], [0, 2 ** 60], [-1, 3], 'x'.repeat(300), { __float__: 'Infinity' },
  { __float__: 'NaN' }, { __float__: 'bogus' }, { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, ['a', 'b'], [['a', 'b']],
];

const NEST_MARK = '\u0000nest\u0000';

type JsonOp = 'replace' | 'delete' | 'wrap' | 'number' | 'stringify' | 'rename' | 'nest';

/** Every container and value in a JSON tree, with the way to replace or delete it. */
function nodes(root: unknown): { get: () => unknown; set: (v: unknown) => void; del: () => void; rename: (k: string) => void }[] {
  const out: ReturnType<typeof nodes> = [];
  const visit = (parent: Record<string, unknown> | unknown[], key: string | number) => {
    const holder = parent as Record<string | number, unknown>;
    out.push({
      get: () => holder[key],
      set: (v) => { holder[key] = v; },
      del: () => { if (Array.isArray(parent)) parent.splice(key as number, 1); else delete holder[key]; },
      rename: (k) => { if (!Array.isArray(parent)) { holder[k] = holder[key]; delete holder[key]; } },
    });
    const v = holder[key];
    if (typeof v === 'object' && v !== null && out.length < 5000) {
      for (const k of Array.isArray(v) ? v.keys() : Object.keys(v)) visit(v as Record<string, unknown>, k);
    }
  };
  const box = { root };
  visit(box, 'root');
  return out;
}

const jsonMutation = fc
  .tuple(position, fc.constantFrom<JsonOp>('replace', 'replace', 'delete', 'wrap', 'number', 'stringify', 'rename', 'nest'), fc.oneof(fc.constantFrom(...INTERESTING_JSON), fc.jsonValue({ maxDepth: 2 })), fc.string({ maxLength: 12 }))
  .map(([p, op, value, name]): Mutation => (input, shape) => {
    const part = shape.textPart?.(input);
    if (!part) return input;
    // Trees already nested deeper than the JS stack (earlier 'nest' mutations) are left alone.
    try {
      const all = nodes(JSON.parse(part.text));
      const node = all[p % all.length];
      const current = node.get();
      switch (op) {
        case 'replace': node.set(structuredClone(value)); break;
        case 'delete': node.del(); break;
        case 'wrap': node.set([current]); break;
        case 'number': node.set(typeof current === 'number' ? current * -3 + 1 : INTERESTING_SIZES[p % INTERESTING_SIZES.length]); break;
        case 'stringify': node.set(JSON.stringify(current) ?? 'null'); break;
        case 'rename': node.rename(name); break;
        case 'nest': node.set(NEST_MARK); break;
      }
      // Deep nesting (stack-hungry parsers and recursive validators) is spliced in as text.
      const text = (JSON.stringify(all[0].get()) ?? '').replace(JSON.stringify(NEST_MARK), '['.repeat(2000) + ']'.repeat(2000));
      return part.rebuild(text);
    } catch {
      return input;
    }
  });

/** Text mutations for non-JSON text parts (the .npy header's Python dict): swap in tokens. */
const TEXT_TOKENS = ["'", '"', '(', ')', ',', ':', '{', '}', 'True', 'False', '<f4', '>f8', '|b1', '<c8', '|O', '0', '-1', '99999999999999999999', '4294967296', ' ', '\n', '\\', 'L', "'shape'", "'descr'", '()', '(0,)', '(1,)'];
const textMutation = fc.tuple(position, fc.integer({ min: 0, max: 8 }), fc.constantFrom(...TEXT_TOKENS)).map(([p, cut, token]): Mutation => (input, shape) => {
  const part = shape.textPart?.(input);
  if (!part) return input;
  const at = p % (part.text.length + 1);
  return part.rebuild(part.text.slice(0, at) + token + part.text.slice(at + cut));
});

/** Weights of [bit flip, set byte, truncate, insert, remove, duplicate, length field, JSON tree, text token]. */
function mutation(textual: boolean): fc.Arbitrary<Mutation> {
  const weights = textual ? [1, 0, 1, 0, 0, 1, 0, 20, 2] : [3, 2, 1, 1, 1, 1, 3, 4, 2];
  const all = [bitFlip, setByte, truncate, insert, remove, duplicate, lengthField, jsonMutation, textMutation];
  return fc.oneof(...all.map((arbitrary, i) => ({ arbitrary, weight: weights[i] })).filter((w) => w.weight > 0));
}

/** Seeds changed by one to four mutations in a row. */
export function mutatedFrom(seeds: readonly Uint8Array[], shape: FormatShape): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.constantFrom(...seeds), fc.array(mutation(shape.textual ?? false), { minLength: 1, maxLength: 4 })).map(([seed, mutations]) =>
    mutations.reduce((bytes, m) => m(bytes, shape), seed),
  );
}
