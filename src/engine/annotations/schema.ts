/**
 * The annotation file, version 2: `.mamba-scope/annotations/<sample>.json`. Version 2 adds each
 * annotation's evidence (forgottenAt, causalKl, causalEpsilon: what the detector and the causal
 * check measured); a version 1 file loads with that evidence null, and is saved as version 2, so
 * an older Mamba Scope refuses the file instead of rewriting it without the evidence.
 *
 * A file belongs to one sample and records what the annotations were anchored against (the
 * sample's hash, the model's config hash, the tokenizer's hash), so a change to any of them is
 * detected and the annotations re-anchored instead of silently pointing at the wrong tokens.
 * Deletions are kept as tombstones so that merging with an older copy cannot bring them back.
 *
 * Parsing is strict and names the file and the problem; a file of a newer version is refused
 * with an 'unsupported' error so that an older extension never rewrites (and loses) what it
 * does not understand.
 */
import { InputError, MambaScopeError } from '../errors';

export const ANNOTATION_FORMAT = 'mamba-scope-annotations';
export const ANNOTATION_VERSION = 2;

export type AnnotationOrigin = 'user' | 'detector-accepted';
export const ORIGINS: readonly AnnotationOrigin[] = ['user', 'detector-accepted'];
/** The two built-in labels; any other non-empty string is a custom label. */
export const BUILTIN_LABELS = ['forgotten', 'retained'] as const;
export const MAX_LABEL_LENGTH = 200;
export const MAX_NOTE_LENGTH = 100_000;
/** Context kept on each side of a span (see Annotation.prefix). */
export const CONTEXT_LENGTH = 32;
/** Imported files may carry longer context; this only bounds nonsense. */
const MAX_CONTEXT_LENGTH = 1000;

export interface Annotation {
  /** UUID (or any unique id an import brought in). */
  readonly id: string;
  /** UTF-16 character offsets [start, end) in the sample; start < end. */
  readonly start: number;
  readonly end: number;
  /** The annotated text, sample.slice(start, end) when anchored: what re-anchoring searches for. */
  readonly text: string;
  /** Up to CONTEXT_LENGTH characters before and after the span: tell repeated texts apart. */
  readonly prefix: string;
  readonly suffix: string;
  /** Token indices [tokenStart, tokenEnd) covering [start, end) under the file's tokenizer. */
  readonly tokenStart: number;
  readonly tokenEnd: number;
  /** Layer the annotation is about; null when it is not about one layer. */
  readonly layer: number | null;
  /** Retention threshold τ in effect when it was made; null when none applies. */
  readonly threshold: number | null;
  /** The detector's evidence: the first token t where the retention R(s→t) fell below τ; null when not from the detector. */
  readonly forgottenAt: number | null;
  /**
   * The causal check's evidence: the mean KL (nats) of the next-token distributions from
   * forgottenAt on when the token's write is ablated in the layer, and the ε it was held against
   * (causally forgotten when causalKl < causalEpsilon); both null when it was not checked.
   */
  readonly causalKl: number | null;
  readonly causalEpsilon: number | null;
  /** 'forgotten', 'retained' or a custom label. */
  readonly label: string;
  readonly note: string;
  /** ISO 8601 UTC (Date.toISOString()). */
  readonly createdAt: string;
  readonly updatedAt: string;
  /** The sample changed and the text could not be found again: offsets are the old ones. */
  readonly stale: boolean;
  readonly origin: AnnotationOrigin;
}

export interface Tombstone {
  readonly id: string;
  readonly deletedAt: string;
}

/** A rejected detector suggestion, so it is not offered again for the same text. */
export interface Dismissal {
  readonly layer: number;
  readonly start: number;
  readonly end: number;
  /** The sample hash it was rejected under: a changed text gets fresh suggestions. */
  readonly sampleSha256: string;
  readonly dismissedAt: string;
}

export interface SampleRef {
  /** Workspace-relative path with '/' separators. */
  readonly path: string;
  readonly sha256: string;
  /** Length in UTF-16 units. */
  readonly length: number;
}

export interface ModelRef {
  /** Display id: the model folder name or "mamba1-demo". */
  readonly id: string;
  readonly configSha256: string;
}

export interface AnnotationFile {
  readonly format: typeof ANNOTATION_FORMAT;
  /** Always the current version once read: older files are read into it. */
  readonly version: typeof ANNOTATION_VERSION;
  readonly sample: SampleRef;
  readonly model: ModelRef | null;
  readonly tokenizer: { readonly sha256: string } | null;
  readonly annotations: readonly Annotation[];
  readonly tombstones: readonly Tombstone[];
  readonly dismissed: readonly Dismissal[];
}

/** The file was written by a newer Mamba Scope: it must be left exactly as it is. */
export class NewerVersionError extends MambaScopeError {
  constructor(source: string, readonly version: number) {
    super('unsupported', source, `was written by a newer Mamba Scope (annotation schema version ${version}; this one reads up to ${ANNOTATION_VERSION}): left untouched, update the extension to edit it`);
  }
}

export function emptyAnnotationFile(sample: SampleRef, model: ModelRef | null = null, tokenizer: { sha256: string } | null = null): AnnotationFile {
  return { format: ANNOTATION_FORMAT, version: ANNOTATION_VERSION, sample, model, tokenizer, annotations: [], tombstones: [], dismissed: [] };
}

/** JSON text as stored: stable key order, annotations sorted by position, 2-space indent. */
export function formatAnnotationFile(file: AnnotationFile): string {
  return JSON.stringify(canonical(file), null, 2) + '\n';
}

export function parseAnnotationFile(text: string, source: string): AnnotationFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(source, `is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  return validateAnnotationFile(json, source);
}

export function validateAnnotationFile(json: unknown, source: string): AnnotationFile {
  const o = object(json, source, 'the file');
  if (o.format !== ANNOTATION_FORMAT) throw new InputError(source, `is not a Mamba Scope annotation file (format is ${JSON.stringify(o.format)}, expected "${ANNOTATION_FORMAT}")`);
  if (typeof o.version !== 'number' || !Number.isInteger(o.version) || o.version < 1) throw new InputError(source, `has no valid "version" (got ${JSON.stringify(o.version)})`);
  if (o.version > ANNOTATION_VERSION) throw new NewerVersionError(source, o.version);
  const s = object(o.sample, source, '"sample"');
  const sample: SampleRef = { path: str(s.path, source, 'sample.path'), sha256: hash(s.sha256, source, 'sample.sha256'), length: count(s.length, source, 'sample.length') };
  let model: ModelRef | null = null;
  if (o.model !== null && o.model !== undefined) {
    const m = object(o.model, source, '"model"');
    model = { id: str(m.id, source, 'model.id'), configSha256: hash(m.configSha256, source, 'model.configSha256') };
  }
  let tokenizer: { sha256: string } | null = null;
  if (o.tokenizer !== null && o.tokenizer !== undefined) tokenizer = { sha256: hash(object(o.tokenizer, source, '"tokenizer"').sha256, source, 'tokenizer.sha256') };
  const annotations = array(o.annotations, source, 'annotations').map((a, i) => validateAnnotation(a, `${source}: annotations[${i}]`));
  const tombstones = array(o.tombstones ?? [], source, 'tombstones').map((t, i) => {
    const x = object(t, source, `tombstones[${i}]`);
    return { id: id(x.id, source, `tombstones[${i}].id`), deletedAt: time(x.deletedAt, source, `tombstones[${i}].deletedAt`) };
  });
  const dismissed = array(o.dismissed ?? [], source, 'dismissed').map((d, i) => {
    const x = object(d, source, `dismissed[${i}]`);
    const where = `dismissed[${i}]`;
    return {
      layer: count(x.layer, source, `${where}.layer`), start: count(x.start, source, `${where}.start`), end: count(x.end, source, `${where}.end`),
      sampleSha256: hash(x.sampleSha256, source, `${where}.sampleSha256`), dismissedAt: time(x.dismissedAt, source, `${where}.dismissedAt`),
    };
  });
  const seen = new Set<string>();
  for (const a of annotations) {
    if (seen.has(a.id)) throw new InputError(source, `has two annotations with id "${a.id}"`);
    seen.add(a.id);
  }
  return { format: ANNOTATION_FORMAT, version: ANNOTATION_VERSION, sample, model, tokenizer, annotations, tombstones, dismissed };
}

/**
 * One annotation from untrusted JSON. `where` prefixes the problem ("file: annotations[3]" or
 * "file: line 7") so an import error points at the bad record.
 */
export function validateAnnotation(json: unknown, where: string): Annotation {
  const a = object(json, where, 'an annotation');
  const start = count(a.start, where, 'start'), end = count(a.end, where, 'end');
  if (end <= start) throw new InputError(where, `end (${end}) must be greater than start (${start})`);
  const tokenStart = count(a.tokenStart, where, 'tokenStart'), tokenEnd = count(a.tokenEnd, where, 'tokenEnd');
  if (tokenEnd < tokenStart) throw new InputError(where, `tokenEnd (${tokenEnd}) is before tokenStart (${tokenStart})`);
  const text = str(a.text, where, 'text');
  if (text.length !== end - start) throw new InputError(where, `text has ${text.length} characters but [start, end) spans ${end - start}`);
  const prefix = str(a.prefix ?? '', where, 'prefix'), suffix = str(a.suffix ?? '', where, 'suffix');
  if (prefix.length > MAX_CONTEXT_LENGTH || suffix.length > MAX_CONTEXT_LENGTH) throw new InputError(where, `prefix and suffix must be at most ${MAX_CONTEXT_LENGTH} characters`);
  const label = str(a.label, where, 'label');
  if (label.length === 0 || label.length > MAX_LABEL_LENGTH) throw new InputError(where, `label must be 1..${MAX_LABEL_LENGTH} characters`);
  const note = str(a.note ?? '', where, 'note');
  if (note.length > MAX_NOTE_LENGTH) throw new InputError(where, `note is longer than ${MAX_NOTE_LENGTH} characters`);
  const threshold = a.threshold ?? null;
  if (threshold !== null && !(typeof threshold === 'number' && threshold > 0 && threshold <= 1)) throw new InputError(where, `threshold must be null or in (0, 1]; got ${JSON.stringify(threshold)}`);
  const origin = a.origin ?? 'user';
  if (!ORIGINS.includes(origin as AnnotationOrigin)) throw new InputError(where, `origin must be one of ${ORIGINS.join(', ')}; got ${JSON.stringify(origin)}`);
  if (a.stale !== undefined && typeof a.stale !== 'boolean') throw new InputError(where, `stale must be true or false; got ${JSON.stringify(a.stale)}`);
  const createdAt = time(a.createdAt, where, 'createdAt'), updatedAt = time(a.updatedAt, where, 'updatedAt');
  const forgottenAt = a.forgottenAt === null || a.forgottenAt === undefined ? null : count(a.forgottenAt, where, 'forgottenAt');
  const causalKl = optionalNumber(a.causalKl, where, 'causalKl', (v) => v >= 0, 'a KL ≥ 0');
  const causalEpsilon = optionalNumber(a.causalEpsilon, where, 'causalEpsilon', (v) => v > 0, 'an ε > 0');
  if ((causalKl === null) !== (causalEpsilon === null)) throw new InputError(where, 'causalKl and causalEpsilon go together: both numbers or both null');
  return {
    id: id(a.id, where, 'id'), start, end, text, prefix, suffix, tokenStart, tokenEnd,
    layer: a.layer === null || a.layer === undefined ? null : count(a.layer, where, 'layer'),
    threshold: threshold as number | null, forgottenAt, causalKl, causalEpsilon, label, note, createdAt, updatedAt, stale: a.stale === true, origin: origin as AnnotationOrigin,
  };
}

/** null (or absent), or a finite number that passes `ok`. */
function optionalNumber(v: unknown, where: string, what: string, ok: (v: number) => boolean, expected: string): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new InputError(where, `${what} must be null or ${expected}; got ${JSON.stringify(v)}`);
  return v;
}

/** Key order of an annotation in files and exports. */
export const ANNOTATION_FIELDS = ['id', 'start', 'end', 'text', 'prefix', 'suffix', 'tokenStart', 'tokenEnd', 'layer', 'threshold', 'forgottenAt', 'causalKl', 'causalEpsilon', 'label', 'note', 'origin', 'stale', 'createdAt', 'updatedAt'] as const satisfies readonly (keyof Annotation)[];

export function canonicalAnnotation(a: Annotation): Annotation {
  const out: Record<string, unknown> = {};
  for (const k of ANNOTATION_FIELDS) out[k] = a[k];
  return out as unknown as Annotation;
}

/** Sorted by position, then id: the same content always serializes to the same bytes. */
export function sortAnnotations(list: readonly Annotation[]): Annotation[] {
  return [...list].sort((a, b) => a.start - b.start || a.end - b.end || (a.layer ?? -1) - (b.layer ?? -1) || compare(a.id, b.id));
}

function canonical(file: AnnotationFile): AnnotationFile {
  return {
    format: ANNOTATION_FORMAT,
    version: ANNOTATION_VERSION,
    sample: { path: file.sample.path, sha256: file.sample.sha256, length: file.sample.length },
    model: file.model && { id: file.model.id, configSha256: file.model.configSha256 },
    tokenizer: file.tokenizer && { sha256: file.tokenizer.sha256 },
    annotations: sortAnnotations(file.annotations).map(canonicalAnnotation),
    tombstones: [...file.tombstones].sort((a, b) => compare(a.id, b.id)).map((t) => ({ id: t.id, deletedAt: t.deletedAt })),
    dismissed: [...file.dismissed]
      .sort((a, b) => a.layer - b.layer || a.start - b.start || a.end - b.end || compare(a.sampleSha256, b.sampleSha256))
      .map((d) => ({ layer: d.layer, start: d.start, end: d.end, sampleSha256: d.sampleSha256, dismissedAt: d.dismissedAt })),
  };
}

export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Milliseconds of an ISO timestamp (validated on parse). */
export function timeOf(iso: string): number {
  return Date.parse(iso);
}

function object(v: unknown, source: string, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputError(source, `${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

function array(v: unknown, source: string, what: string): unknown[] {
  if (!Array.isArray(v)) throw new InputError(source, `"${what}" must be a JSON array`);
  return v;
}

function str(v: unknown, source: string, what: string): string {
  if (typeof v !== 'string') throw new InputError(source, `${what} must be a string; got ${JSON.stringify(v) ?? 'nothing'}`);
  return v;
}

function id(v: unknown, source: string, what: string): string {
  const s = str(v, source, what);
  if (s.length === 0 || s.length > 128) throw new InputError(source, `${what} must be 1..128 characters`);
  return s;
}

function count(v: unknown, source: string, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InputError(source, `${what} must be a non-negative integer; got ${JSON.stringify(v) ?? 'nothing'}`);
  return v;
}

function hash(v: unknown, source: string, what: string): string {
  const s = str(v, source, what);
  if (!/^[0-9a-f]{64}$/.test(s)) throw new InputError(source, `${what} must be a lowercase hex SHA-256`);
  return s;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
function time(v: unknown, source: string, what: string): string {
  const s = str(v, source, what);
  if (!ISO_UTC.test(s) || Number.isNaN(Date.parse(s))) throw new InputError(source, `${what} must be an ISO 8601 UTC time like 2024-05-01T12:00:00.000Z; got ${JSON.stringify(s)}`);
  return s;
}
