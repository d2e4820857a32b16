/**
 * Export and import of annotations as JSON (the whole file), JSONL (one annotation per line) and
 * CSV (RFC 4180: a header row of field names, quoted fields may hold commas, quotes and line
 * breaks). Imports validate every record and name the line of the first bad one; an import is
 * merged into the open file by id (last writer wins), so importing twice changes nothing.
 * Hand-made rows may leave id, createdAt and updatedAt empty: they get a fresh id and "now".
 */
import { InputError } from '../errors';
import { nowIso, randomUuid, type EditContext } from './edit';
import { mergeAnnotationFiles } from './merge';
import {
  ANNOTATION_FIELDS, ANNOTATION_FORMAT, canonicalAnnotation, formatAnnotationFile, sortAnnotations, validateAnnotation, validateAnnotationFile,
  type Annotation, type AnnotationFile, type Tombstone,
} from './schema';

export type ExchangeFormat = 'json' | 'jsonl' | 'csv';
export const EXCHANGE_FORMATS: readonly ExchangeFormat[] = ['json', 'jsonl', 'csv'];

export interface Imported {
  readonly annotations: Annotation[];
  /** Deletions carried by a whole-file JSON import. */
  readonly tombstones: Tombstone[];
}

/** The format a file name implies, by extension. */
export function formatFromName(name: string): ExchangeFormat | undefined {
  const ext = /\.([a-z]+)$/i.exec(name)?.[1].toLowerCase();
  return EXCHANGE_FORMATS.find((f) => f === ext);
}

export function exportAnnotations(file: AnnotationFile, format: ExchangeFormat): string {
  const list = sortAnnotations(file.annotations).map(canonicalAnnotation);
  switch (format) {
    case 'json': return formatAnnotationFile(file);
    case 'jsonl': return list.map((a) => JSON.stringify(a) + '\n').join('');
    case 'csv': return [ANNOTATION_FIELDS.join(','), ...list.map((a) => ANNOTATION_FIELDS.map((f) => csvCell(a[f])).join(','))].map((l) => l + '\r\n').join('');
  }
}

export function importAnnotations(text: string, format: ExchangeFormat, source: string, ctx: EditContext = {}): Imported {
  switch (format) {
    case 'json': return importJson(text, source, ctx);
    case 'jsonl': return importJsonl(text, source, ctx);
    case 'csv': return importCsv(text, source, ctx);
  }
}

/** `file` plus the imported annotations, merged by id without a base (see merge.ts). */
export function importInto(file: AnnotationFile, text: string, format: ExchangeFormat, source: string, ctx: EditContext = {}): AnnotationFile {
  const imported = importAnnotations(text, format, source, ctx);
  return mergeAnnotationFiles(file, { ...file, annotations: imported.annotations, tombstones: imported.tombstones, dismissed: [] });
}

function importJson(text: string, source: string, ctx: EditContext): Imported {
  let json: unknown;
  try {
    json = JSON.parse(stripBom(text));
  } catch (e) {
    throw new InputError(source, `is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (Array.isArray(json)) return { annotations: checkUnique(json.map((a, i) => validateAnnotation(withDefaults(a, ctx), `${source}: [${i}]`)), source), tombstones: [] };
  if (typeof json === 'object' && json !== null && (json as { format?: unknown }).format === ANNOTATION_FORMAT) {
    const file = validateAnnotationFile(json, source);
    return { annotations: [...file.annotations], tombstones: [...file.tombstones] };
  }
  throw new InputError(source, `is neither a Mamba Scope annotation file nor a JSON array of annotations`);
}

function importJsonl(text: string, source: string, ctx: EditContext): Imported {
  const annotations: Annotation[] = [];
  stripBom(text).split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      throw new InputError(source, `line ${i + 1}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    annotations.push(validateAnnotation(withDefaults(json, ctx), `${source}: line ${i + 1}`));
  });
  return { annotations: checkUnique(annotations, source), tombstones: [] };
}

const INTEGER_FIELDS = new Set(['start', 'end', 'tokenStart', 'tokenEnd', 'layer', 'forgottenAt']);
/** Columns an older export (or a hand-made file) may leave out: null when empty or absent. */
const NULLABLE_FIELDS = ['layer', 'threshold', 'forgottenAt', 'causalKl', 'causalEpsilon'];
const REAL_FIELDS = ['threshold', 'causalKl', 'causalEpsilon'];

function importCsv(text: string, source: string, ctx: EditContext): Imported {
  const records = parseCsv(stripBom(text), source);
  if (records.length === 0) throw new InputError(source, 'is empty: expected a header row');
  const header = records[0].cells.map((c) => c.trim());
  const missing = ANNOTATION_FIELDS.filter((f) => !header.includes(f) && !['id', 'prefix', 'suffix', 'note', 'origin', 'stale', 'createdAt', 'updatedAt', ...NULLABLE_FIELDS].includes(f));
  if (missing.length) throw new InputError(source, `line ${records[0].line}: the header lacks column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  const unknown = header.filter((h) => !(ANNOTATION_FIELDS as readonly string[]).includes(h));
  if (unknown.length) throw new InputError(source, `line ${records[0].line}: unknown column${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (expected ${ANNOTATION_FIELDS.join(', ')})`);
  const annotations = records.slice(1).map(({ cells, line }) => {
    const where = `${source}: line ${line}`;
    if (cells.length !== header.length) throw new InputError(where, `has ${cells.length} fields, the header has ${header.length}`);
    const raw: Record<string, unknown> = {};
    header.forEach((name, i) => (raw[name] = csvValue(name, cells[i], where)));
    return validateAnnotation(withDefaults(raw, ctx), where);
  });
  return { annotations: checkUnique(annotations, source), tombstones: [] };
}

/** A CSV cell as the type the schema expects; empty cells are absent (null for layer and threshold). */
function csvValue(name: string, cell: string, where: string): unknown {
  if (cell === '') return NULLABLE_FIELDS.includes(name) ? null : ['text', 'prefix', 'suffix', 'note', 'label'].includes(name) ? '' : undefined;
  if (INTEGER_FIELDS.has(name)) {
    if (!/^\d+$/.test(cell)) throw new InputError(where, `${name} must be a non-negative integer; got ${JSON.stringify(cell)}`);
    return Number(cell);
  }
  if (REAL_FIELDS.includes(name)) {
    if (!/^(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(cell)) throw new InputError(where, `${name} must be a number; got ${JSON.stringify(cell)}`);
    return Number(cell);
  }
  if (name === 'stale') {
    if (cell !== 'true' && cell !== 'false') throw new InputError(where, `stale must be true or false; got ${JSON.stringify(cell)}`);
    return cell === 'true';
  }
  return cell;
}

function withDefaults(json: unknown, ctx: EditContext): unknown {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return json;
  const a = { ...(json as Record<string, unknown>) };
  if (a.id === undefined || a.id === '') a.id = ctx.newId ? ctx.newId() : randomUuid();
  if (a.createdAt === undefined || a.createdAt === '') a.createdAt = nowIso(ctx);
  if (a.updatedAt === undefined || a.updatedAt === '') a.updatedAt = a.createdAt;
  return a;
}

function checkUnique(list: Annotation[], source: string): Annotation[] {
  const seen = new Set<string>();
  for (const a of list) {
    if (seen.has(a.id)) throw new InputError(source, `has two annotations with id "${a.id}"`);
    seen.add(a.id);
  }
  return list;
}

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 records with the 1-based line each starts on; LF or CRLF line ends; blank lines skipped. */
export function parseCsv(text: string, source: string): { cells: string[]; line: number }[] {
  const records: { cells: string[]; line: number }[] = [];
  const n = text.length;
  const atLineEnd = (j: number) => text[j] === '\n' || (text[j] === '\r' && text[j + 1] === '\n');
  let cells: string[] = [];
  let line = 1;
  let recordLine = 1;
  let i = 0;
  for (;;) {
    let cell = '';
    if (text[i] === '"') {
      const opened = line;
      for (i++; ; ) {
        if (i >= n) throw new InputError(source, `line ${opened}: a quoted field is never closed`);
        if (text[i] === '"') {
          if (text[i + 1] !== '"') break;
          cell += '"';
          i += 2;
        } else {
          if (text[i] === '\n') line++;
          cell += text[i++];
        }
      }
      i++; // the closing quote
      if (i < n && text[i] !== ',' && !atLineEnd(i)) throw new InputError(source, `line ${line}: text after the closing quote of a field`);
    } else {
      const from = i;
      while (i < n && text[i] !== ',' && !atLineEnd(i)) {
        if (text[i] === '"') throw new InputError(source, `line ${line}: a quote inside an unquoted field (quote the whole field and double the quote)`);
        i++;
      }
      cell = text.slice(from, i);
    }
    cells.push(cell);
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (!(cells.length === 1 && cells[0] === '')) records.push({ cells, line: recordLine });
    cells = [];
    if (i >= n) break;
    i += text[i] === '\r' ? 2 : 1;
    recordLine = ++line;
    if (i >= n) break;
  }
  return records;
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
