/**
 * Hugging Face tokenizer.json through @huggingface/tokenizers (Mamba models use GPT-NeoX's
 * byte-level BPE). The library gives ids and vocabulary pieces; we add what a viewer needs:
 * each token's readable text and its UTF-16 character range in the sample, recovered from the
 * byte-level pieces (each piece character stands for one byte of the UTF-8 text).
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { InputError } from './errors';

export interface Encoded {
  readonly ids: Int32Array;
  /** Vocabulary pieces as stored in tokenizer.json ("Ġget"): what dumps record in "tokens". */
  readonly pieces: string[];
  /** The text each token stands for ("␠get" is " get"); partial UTF-8 sequences show as �. */
  readonly tokens: string[];
  /** [start, end) UTF-16 offsets of each token in the encoded text. */
  readonly offsets: [number, number][];
}

/** GPT-2's byte ↔ printable-character table that byte-level BPE vocabularies are written in. */
const BYTE_OF_CHAR: ReadonlyMap<string, number> = (() => {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const map = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const code = printable.includes(b) ? b : 256 + extra++;
    map.set(String.fromCodePoint(code), b);
  }
  return map;
})();

const lossyUtf8 = new TextDecoder('utf-8');

export class MambaTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly byteLevel: boolean,
    readonly vocabSize: number,
    /** The tokenizer.json this came from, for error messages. */
    private readonly source: string,
  ) {}

  static fromJson(text: string, source: string): MambaTokenizer {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new InputError(source, 'is not valid JSON');
    }
    validateTokenizerJson(json, source);
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json as object, {});
      tokenizer.encode('a', { add_special_tokens: false });
    } catch (e) {
      throw new InputError(source, `cannot be used as a tokenizer: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    }
    const j = json as { pre_tokenizer?: { type?: string } | null; decoder?: { type?: string } | null };
    const byteLevel = j.pre_tokenizer?.type === 'ByteLevel' || j.decoder?.type === 'ByteLevel';
    return new MambaTokenizer(tokenizer, byteLevel, tokenizer.get_vocab(true).size, source);
  }

  encode(text: string): Encoded {
    const { ids } = this.tokenizer.encode(text, { add_special_tokens: false });
    // The library can hand back null for text its vocabulary cannot express: say so, never id 0.
    const bad = ids.findIndex((id) => !Number.isInteger(id));
    if (bad >= 0) throw new InputError(this.source, `cannot encode the text: token ${bad} has no id (text outside the vocabulary and no usable unk_token)`);
    const pieces = ids.map((id) => this.tokenizer.id_to_token(id) ?? '');
    const { tokens, offsets } = this.byteLevel ? byteLevelSpans(text, pieces) : decodedSpans(text, ids.map((id) => this.tokenText(id)));
    return { ids: Int32Array.from(ids), pieces, tokens, offsets };
  }

  decode(ids: ArrayLike<number>): string {
    try {
      return this.tokenizer.decode(Array.from(ids), { skip_special_tokens: false });
    } catch (e) {
      throw new InputError(this.source, `cannot decode ids: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    }
  }

  /** The readable text of one token id (for top-k predictions). */
  tokenText(id: number): string {
    const piece = this.tokenizer.id_to_token(id);
    if (typeof piece !== 'string') return `<${id}>`;
    if (this.byteLevel) return lossyUtf8.decode(pieceBytes(piece));
    try {
      return this.decode([id]);
    } catch {
      return piece; // decoders that refuse a lone token: show the vocabulary piece
    }
  }
}

function pieceBytes(piece: string): Uint8Array {
  return Uint8Array.from([...piece], (ch) => BYTE_OF_CHAR.get(ch) ?? 0x3f);
}

/** Byte-level pieces concatenate to the UTF-8 bytes of the text; map byte offsets to UTF-16. */
function byteLevelSpans(text: string, pieces: string[]): { tokens: string[]; offsets: [number, number][] } {
  // utf16At[b] = UTF-16 index of the character that byte b belongs to (and one past the end).
  const utf16At: number[] = [];
  let i = 0;
  for (const ch of text) {
    const n = new TextEncoder().encode(ch).length;
    for (let k = 0; k < n; k++) utf16At.push(i);
    i += ch.length;
  }
  utf16At.push(text.length);
  const tokens: string[] = [];
  const offsets: [number, number][] = [];
  let byte = 0;
  for (const piece of pieces) {
    const bytes = pieceBytes(piece);
    tokens.push(lossyUtf8.decode(bytes));
    const start = utf16At[Math.min(byte, utf16At.length - 1)];
    byte += bytes.length;
    // A token that ends inside a multi-byte character extends to the end of that character.
    const endByte = Math.min(byte, utf16At.length - 1);
    let end = utf16At[endByte];
    if (endByte > 0 && utf16At[endByte] === utf16At[endByte - 1] && endByte < utf16At.length - 1) end = nextCharStart(utf16At, endByte);
    offsets.push([start, Math.max(start, end)]);
  }
  return { tokens, offsets };
}

function nextCharStart(utf16At: number[], byte: number): number {
  let b = byte;
  while (b < utf16At.length - 1 && utf16At[b] === utf16At[byte - 1]) b++;
  return utf16At[b];
}

/** Other tokenizers: find each decoded token in the text, in order. */
function decodedSpans(text: string, tokens: string[]): { tokens: string[]; offsets: [number, number][] } {
  const offsets: [number, number][] = [];
  let at = 0;
  for (const t of tokens) {
    const needle = t.trim() || t;
    const found = needle ? text.indexOf(needle, at) : -1;
    const start = found >= 0 ? found : at;
    const end = found >= 0 ? found + needle.length : at;
    offsets.push([start, end]);
    at = end;
  }
  return { tokens, offsets };
}

const MODEL_TYPES = ['BPE', 'WordPiece', 'WordLevel', 'Unigram'];
const MAX_VOCAB = 1 << 24;

/**
 * The tokenizer library trusts its input; a malformed file can make it loop. What a real
 * tokenizer.json always satisfies is checked here first: a known model type, a vocabulary of
 * distinct non-negative ids, merges as pairs of non-empty strings, non-empty added tokens.
 */
function validateTokenizerJson(json: unknown, source: string): void {
  const fail = (problem: string): never => {
    throw new InputError(source, problem);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('is not a JSON object');
  const j = json as Record<string, unknown>;
  const model = j.model as Record<string, unknown> | null | undefined;
  if (typeof model !== 'object' || model === null || Array.isArray(model)) fail('has no "model" object: not a Hugging Face tokenizer.json');
  const m = model as Record<string, unknown>;
  if (!MODEL_TYPES.includes(m.type as string)) fail(`model.type ${JSON.stringify(m.type)} is not one of ${MODEL_TYPES.join(', ')}`);
  const ids = new Set<number>();
  const checkId = (id: unknown, what: string) => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= MAX_VOCAB) fail(`${what} has id ${JSON.stringify(id)}, not an integer in [0, ${MAX_VOCAB})`);
    if (ids.has(id as number)) fail(`${what} reuses id ${id}`);
    ids.add(id as number);
  };
  if (m.type === 'Unigram') {
    if (!Array.isArray(m.vocab) || !m.vocab.every((e) => Array.isArray(e) && typeof e[0] === 'string' && e[0] !== '' && typeof e[1] === 'number')) {
      fail('model.vocab of a Unigram model must be a list of [piece, score]');
    }
  } else {
    if (typeof m.vocab !== 'object' || m.vocab === null || Array.isArray(m.vocab)) fail('has no model.vocab object');
    for (const [piece, id] of Object.entries(m.vocab as object)) {
      if (piece === '') fail('model.vocab has an empty token');
      checkId(id, `model.vocab["${piece}"]`);
    }
  }
  if (m.type === 'BPE') {
    if (!Array.isArray(m.merges)) fail('model.merges of a BPE model must be a list');
    for (const merge of m.merges as unknown[]) {
      const pair = typeof merge === 'string' ? merge.split(' ') : merge;
      if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((p) => typeof p === 'string' && p !== '')) fail(`model.merges has an entry ${JSON.stringify(merge).slice(0, 60)} that is not a pair of tokens`);
    }
  }
  if ('unk_token' in m && m.unk_token !== null && (typeof m.unk_token !== 'string' || m.unk_token === '')) fail('model.unk_token must be a non-empty string or null');
  // WordPiece and WordLevel map every unknown word to unk_token: without one in the vocabulary
  // the library returns null ids.
  if ((m.type === 'WordPiece' || m.type === 'WordLevel') && !(typeof m.unk_token === 'string' && Object.prototype.hasOwnProperty.call(m.vocab, m.unk_token))) {
    fail(`model.unk_token ${JSON.stringify(m.unk_token ?? null)} of a ${m.type} model is not in its vocabulary`);
  }
  if (j.added_tokens !== undefined && j.added_tokens !== null) {
    if (!Array.isArray(j.added_tokens)) fail('added_tokens must be a list');
    for (const t of j.added_tokens as unknown[]) {
      const a = t as { id?: unknown; content?: unknown } | null;
      if (typeof a !== 'object' || a === null || typeof a.content !== 'string' || a.content === '') fail('added_tokens has an entry without non-empty "content"');
      if (typeof a?.id !== 'number' || !Number.isInteger(a.id) || a.id < 0 || a.id >= MAX_VOCAB) fail(`added token ${JSON.stringify(a?.content)} has an invalid id`);
    }
  }
}
