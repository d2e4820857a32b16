/**
 * Editing an annotation file: pure functions from a file to a new file. The clock and the id
 * source are injectable so that tests (and the merge) are deterministic.
 */
import { InputError } from '../errors';
import { CONTEXT_LENGTH, MAX_LABEL_LENGTH, MAX_NOTE_LENGTH, type Annotation, type AnnotationFile, type AnnotationOrigin } from './schema';

export interface EditContext {
  /** ISO 8601 UTC now; default new Date().toISOString(). */
  readonly now?: () => string;
  /** A fresh unique id; default a random UUID v4. */
  readonly newId?: () => string;
}

/** Character offsets of every token: MambaTokenizer.encode(text).offsets. */
export type TokenOffsets = readonly (readonly [number, number])[];

/** What the UI supplies for a new annotation; the span comes from spanOfChars or spanOfTokens. */
export interface AnnotationDraft {
  readonly span: Span;
  readonly layer: number | null;
  readonly threshold: number | null;
  readonly label: string;
  readonly note?: string;
  readonly origin?: AnnotationOrigin;
  /** What the detector and the causal check measured (null when absent). */
  readonly evidence?: Partial<Evidence>;
}

/** An annotation's evidence: the detector's forgottenAt, the causal check's KL and its ε. */
export type Evidence = Pick<Annotation, 'forgottenAt' | 'causalKl' | 'causalEpsilon'>;

/** A resolved span: characters, their text and context, and the tokens that cover them. */
export type Span = Pick<Annotation, 'start' | 'end' | 'text' | 'prefix' | 'suffix' | 'tokenStart' | 'tokenEnd'>;

export type AnnotationPatch = Partial<Pick<Annotation, 'layer' | 'threshold' | 'label' | 'note'>>;

export function nowIso(ctx: EditContext = {}): string {
  return ctx.now ? ctx.now() : new Date().toISOString();
}

/** RFC 4122 version 4 from crypto.getRandomValues, which every host has (randomUUID needs a secure context). */
export function randomUuid(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Tokens [tokenStart, tokenEnd) overlapping characters [start, end); an empty range at the insertion point if none does. */
export function tokensCovering(offsets: TokenOffsets, start: number, end: number): { tokenStart: number; tokenEnd: number } {
  // Offsets are in text order: binary-search the first token ending after start.
  let lo = 0, hi = offsets.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (offsets[mid][1] <= start) lo = mid + 1;
    else hi = mid;
  }
  let tokenEnd = lo;
  while (tokenEnd < offsets.length && offsets[tokenEnd][0] < end) tokenEnd++;
  return { tokenStart: Math.min(lo, tokenEnd), tokenEnd };
}

export function spanOfChars(sampleText: string, offsets: TokenOffsets, start: number, end: number): Span {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end <= start || end > sampleText.length) {
    throw new RangeError(`characters [${start}, ${end}) are not a non-empty range of a ${sampleText.length}-character sample`);
  }
  return { start, end, ...spanText(sampleText, start, end), ...tokensCovering(offsets, start, end) };
}

/** The text of [start, end) and up to CONTEXT_LENGTH characters either side. */
export function spanText(sampleText: string, start: number, end: number): { text: string; prefix: string; suffix: string } {
  return { text: sampleText.slice(start, end), prefix: sampleText.slice(Math.max(0, start - CONTEXT_LENGTH), start), suffix: sampleText.slice(end, end + CONTEXT_LENGTH) };
}

/** The characters of tokens [tokenStart, tokenEnd). */
export function spanOfTokens(sampleText: string, offsets: TokenOffsets, tokenStart: number, tokenEnd: number): Span {
  if (!Number.isInteger(tokenStart) || !Number.isInteger(tokenEnd) || tokenStart < 0 || tokenEnd <= tokenStart || tokenEnd > offsets.length) {
    throw new RangeError(`tokens [${tokenStart}, ${tokenEnd}) are not a non-empty range of ${offsets.length} tokens`);
  }
  const start = offsets[tokenStart][0];
  const end = Math.max(start + 1, offsets[tokenEnd - 1][1]);
  return { start, end, ...spanText(sampleText, start, end), tokenStart, tokenEnd };
}

export function addAnnotation(file: AnnotationFile, draft: AnnotationDraft, ctx: EditContext = {}): { file: AnnotationFile; annotation: Annotation } {
  checkFields(draft);
  checkEvidence(draft.evidence ?? {});
  const now = nowIso(ctx);
  const annotation: Annotation = {
    id: ctx.newId ? ctx.newId() : randomUuid(),
    start: draft.span.start, end: draft.span.end, text: draft.span.text, prefix: draft.span.prefix, suffix: draft.span.suffix,
    tokenStart: draft.span.tokenStart, tokenEnd: draft.span.tokenEnd,
    layer: draft.layer, threshold: draft.threshold,
    forgottenAt: draft.evidence?.forgottenAt ?? null, causalKl: draft.evidence?.causalKl ?? null, causalEpsilon: draft.evidence?.causalEpsilon ?? null,
    label: draft.label, note: draft.note ?? '',
    createdAt: now, updatedAt: now, stale: false, origin: draft.origin ?? 'user',
  };
  return { file: { ...file, annotations: [...file.annotations, annotation] }, annotation };
}

export function updateAnnotation(file: AnnotationFile, id: string, patch: AnnotationPatch, ctx: EditContext = {}): AnnotationFile {
  const old = find(file, id);
  const next = { ...old, ...definedOnly(patch) };
  checkFields(next);
  return { ...file, annotations: file.annotations.map((a) => (a.id === id ? { ...next, updatedAt: laterThan(old.updatedAt, nowIso(ctx)) } : a)) };
}

/** Removes annotations and records tombstones, so a merge with an older copy does not revive them. */
export function deleteAnnotations(file: AnnotationFile, ids: readonly string[], ctx: EditContext = {}): AnnotationFile {
  const gone = new Set(ids);
  for (const id of gone) find(file, id);
  const now = nowIso(ctx);
  const tombstones = file.tombstones.filter((t) => !gone.has(t.id));
  for (const a of file.annotations) if (gone.has(a.id)) tombstones.push({ id: a.id, deletedAt: laterThan(a.updatedAt, now) });
  return { ...file, annotations: file.annotations.filter((a) => !gone.has(a.id)), tombstones };
}

function find(file: AnnotationFile, id: string): Annotation {
  const a = file.annotations.find((x) => x.id === id);
  if (!a) throw new RangeError(`no annotation with id "${id}"`);
  return a;
}

function definedOnly(patch: AnnotationPatch): AnnotationPatch {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
}

/**
 * `now`, or just after `previous` if the clock is behind it (another machine's clock, or two
 * edits in one millisecond): an edit must always be newer than what it replaces, or
 * last-writer-wins would throw it away.
 */
function laterThan(previous: string, now: string): string {
  const p = Date.parse(previous);
  return Date.parse(now) > p ? now : new Date(p + 1).toISOString();
}

function checkEvidence(e: Partial<Evidence>): void {
  const { forgottenAt = null, causalKl = null, causalEpsilon = null } = e;
  if (forgottenAt !== null && !(Number.isInteger(forgottenAt) && forgottenAt >= 0)) throw new InputError('annotation', `forgottenAt must be null or a token index; got ${forgottenAt}`);
  if ((causalKl === null) !== (causalEpsilon === null)) throw new InputError('annotation', 'causalKl and causalEpsilon go together');
  if (causalKl !== null && !(Number.isFinite(causalKl) && causalKl >= 0 && causalEpsilon! > 0)) throw new InputError('annotation', `the causal check needs a KL ≥ 0 and an ε > 0; got ${causalKl} and ${causalEpsilon}`);
}

function checkFields(a: { layer: number | null; threshold: number | null; label: string; note?: string }): void {
  if (a.layer !== null && !(Number.isInteger(a.layer) && a.layer >= 0)) throw new InputError('annotation', `layer must be null or a non-negative integer; got ${a.layer}`);
  if (a.threshold !== null && !(a.threshold > 0 && a.threshold <= 1)) throw new InputError('annotation', `threshold must be null or in (0, 1]; got ${a.threshold}`);
  if (a.label.length === 0 || a.label.length > MAX_LABEL_LENGTH) throw new InputError('annotation', `label must be 1..${MAX_LABEL_LENGTH} characters`);
  if ((a.note ?? '').length > MAX_NOTE_LENGTH) throw new InputError('annotation', `note is longer than ${MAX_NOTE_LENGTH} characters`);
}
