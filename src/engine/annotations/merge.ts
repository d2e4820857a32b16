/**
 * Merging two versions of an annotation file, so that two windows (or a window and an import)
 * editing the same file combine their work instead of one overwriting the other.
 *
 * Per annotation id:
 * - both sides have it: with a base (the version both started from) it is a three-way merge
 *   per field: a field changed on one side only takes that change; a field changed on both
 *   takes the later edit (updatedAt). The anchor (offsets, text, context, tokens, stale) is one field,
 *   so a span is never assembled from two different edits. Without a base: the later version.
 * - one side has it: kept, unless the base had it unchanged and the other side removed it
 *   (that is a deletion made without a tombstone, e.g. by hand).
 * - a tombstone (deletion) beats every version updated at or before the deletion; an edit made
 *   after the deletion wins and revives the annotation. So a delete is never undone by merging
 *   with an older copy, and a newer edit is never lost to an older delete.
 * Ties on updatedAt are broken by content, so merge(a, b) and merge(b, a) agree.
 * The header (sample, model, tokenizer) is `ours`: the caller re-anchors afterwards against the
 * text it has open (see anchor.ts), which also repairs anchors that came from an older text.
 */
import { canonicalAnnotation, compare, timeOf, type Annotation, type AnnotationFile, type Dismissal, type Tombstone } from './schema';

const ANCHOR_FIELDS = ['start', 'end', 'text', 'prefix', 'suffix', 'tokenStart', 'tokenEnd', 'stale'] as const;
const SCALAR_FIELDS = ['layer', 'threshold', 'label', 'note', 'origin'] as const;

export function mergeAnnotationFiles(ours: AnnotationFile, theirs: AnnotationFile, base?: AnnotationFile | null): AnnotationFile {
  const o = byId(ours.annotations), t = byId(theirs.annotations), b = base ? byId(base.annotations) : undefined;
  const tombs = new Map<string, Tombstone>();
  for (const x of [...ours.tombstones, ...theirs.tombstones]) {
    const have = tombs.get(x.id);
    if (!have || timeOf(x.deletedAt) > timeOf(have.deletedAt)) tombs.set(x.id, x);
  }
  const ids = new Set([...o.keys(), ...t.keys(), ...tombs.keys()]);
  const annotations: Annotation[] = [];
  const tombstones: Tombstone[] = [];
  for (const id of ids) {
    const mine = o.get(id), other = t.get(id), was = b?.get(id);
    let live: Annotation | undefined;
    let tomb = tombs.get(id);
    if (mine && other) {
      live = combine(mine, other, was);
    } else if (mine || other) {
      live = (mine ?? other)!;
      // Base had it, this side left it alone, the other side removed it: a deletion.
      if (was && !tomb && sameContent(live, was)) {
        tomb = { id, deletedAt: was.updatedAt };
      }
    }
    if (live && !(tomb && timeOf(tomb.deletedAt) >= timeOf(live.updatedAt))) {
      annotations.push(live);
    } else if (tomb) {
      tombstones.push(tomb);
    }
  }
  return { ...ours, annotations, tombstones, dismissed: mergeDismissals(ours.dismissed, theirs.dismissed) };
}

function combine(mine: Annotation, other: Annotation, was: Annotation | undefined): Annotation {
  if (sameContent(mine, other)) return mine;
  const later = newer(mine, other);
  if (!was) return later;
  const out: Record<string, unknown> = { ...later };
  const anchorFrom = sameFields(mine, was, ANCHOR_FIELDS) ? other : sameFields(other, was, ANCHOR_FIELDS) ? mine : later;
  for (const f of ANCHOR_FIELDS) out[f] = anchorFrom[f];
  for (const f of SCALAR_FIELDS) out[f] = mine[f] === was[f] ? other[f] : other[f] === was[f] ? mine[f] : later[f];
  out.createdAt = compare(mine.createdAt, other.createdAt) <= 0 ? mine.createdAt : other.createdAt;
  out.updatedAt = later.updatedAt;
  return out as unknown as Annotation;
}

/** The later edit; equal times fall back to comparing content so the choice is symmetric. */
function newer(a: Annotation, b: Annotation): Annotation {
  const d = timeOf(a.updatedAt) - timeOf(b.updatedAt);
  if (d !== 0) return d > 0 ? a : b;
  return compare(JSON.stringify(canonicalAnnotation(a)), JSON.stringify(canonicalAnnotation(b))) >= 0 ? a : b;
}

function sameFields(a: Annotation, b: Annotation, fields: readonly (keyof Annotation)[]): boolean {
  return fields.every((f) => a[f] === b[f]);
}

function sameContent(a: Annotation, b: Annotation): boolean {
  return sameFields(a, b, [...ANCHOR_FIELDS, ...SCALAR_FIELDS, 'createdAt', 'updatedAt']);
}

function byId(list: readonly Annotation[]): Map<string, Annotation> {
  return new Map(list.map((a) => [a.id, a]));
}

/** Union; the earliest dismissal of the same suggestion under the same text is kept. */
function mergeDismissals(a: readonly Dismissal[], b: readonly Dismissal[]): Dismissal[] {
  const out = new Map<string, Dismissal>();
  for (const d of [...a, ...b]) {
    const key = `${d.layer}:${d.start}:${d.end}@${d.sampleSha256}`;
    const have = out.get(key);
    if (!have || compare(d.dismissedAt, have.dismissedAt) < 0) out.set(key, d);
  }
  return [...out.values()];
}
