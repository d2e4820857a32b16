/**
 * Re-anchoring: keeping annotations on the right characters when the sample text changes.
 *
 * Each annotation remembers its offsets, its text and a little context either side (prefix,
 * suffix). Against a new text, in order:
 *   1. the text is still at the old offset → unchanged;
 *   2. near the old offset (a window that grows with the change in length): the occurrence
 *      whose context matches best, then the nearest to the old offset or to the old offset
 *      shifted by the change in length (text inserted before it);
 *   3. anywhere: the only occurrence, or the one whose context matches strictly best;
 *   4. otherwise the annotation is kept with its old offsets and marked stale — never dropped.
 * Repeated text with no context to tell the copies apart is stale rather than a guess.
 * A stale annotation that can be found again (the edit was undone) becomes fresh again. Token
 * indices and context are recomputed for the current text and tokenization, which also covers
 * a changed tokenizer. Re-anchoring does not touch updatedAt: it is derived from the text, not
 * an edit, and must not win a last-writer-wins merge against a real edit.
 */
import { spanText, tokensCovering, type TokenOffsets } from './edit';
import type { Annotation, AnnotationFile } from './schema';
import { sha256Hex } from './sha256';

export const MIN_SEARCH_WINDOW = 256;

export interface ReanchorResult {
  readonly file: AnnotationFile;
  /** Ids of annotations whose offsets changed. */
  readonly moved: string[];
  /** Ids of annotations that could not be found in the new text. */
  readonly stale: string[];
}

/**
 * Anchors every annotation of `file` to `text`, tokenized as `offsets`. The file's sample hash
 * and length become the new text's. Pass `sha256` when it is already known.
 */
export function reanchor(file: AnnotationFile, text: string, offsets: TokenOffsets, sha256 = sha256Hex(text)): ReanchorResult {
  const shift = text.length - file.sample.length;
  const moved: string[] = [];
  const stale: string[] = [];
  const annotations = file.annotations.map((a): Annotation => {
    const start = locate(text, a, shift);
    if (start === null) {
      stale.push(a.id);
      return a.stale ? a : { ...a, stale: true };
    }
    if (start !== a.start) moved.push(a.id);
    const end = start + a.text.length;
    return { ...a, start, end, ...spanText(text, start, end), ...tokensCovering(offsets, start, end), stale: false };
  });
  return { file: { ...file, sample: { ...file.sample, sha256, length: text.length }, annotations }, moved, stale };
}

interface Candidate {
  readonly at: number;
  /** Matching context characters: common suffix with the prefix + common prefix with the suffix. */
  readonly score: number;
  /** Distance to the old offset or to the old offset moved by the change in length. */
  readonly distance: number;
}

/** New start offset of `a.text` in `text`, or null when it cannot be placed unambiguously. */
function locate(text: string, a: Annotation, shift: number): number | null {
  if (text.startsWith(a.text, a.start)) return a.start;
  const all: Candidate[] = [];
  for (let i = text.indexOf(a.text); i >= 0; i = text.indexOf(a.text, i + 1)) {
    all.push({ at: i, score: contextScore(text, i, a), distance: Math.min(Math.abs(i - a.start), Math.abs(i - a.start - shift)) });
  }
  if (all.length <= 1) return all.length ? all[0].at : null;
  const window = MIN_SEARCH_WINDOW + Math.abs(shift);
  const near = all.filter((c) => c.distance <= window);
  const best = bestOf(near, (c) => [c.score, -c.distance]);
  // Nearness alone decides only between copies that share some context with the original.
  if (best && (best.score > 0 || near.length === 1)) return best.at;
  const byContext = bestOf(all, (c) => [c.score]);
  return byContext && byContext.score > 0 ? byContext.at : null;
}

/** The candidate ranked strictly first by `rank` (compared lexicographically), or undefined on a tie. */
function bestOf(list: readonly Candidate[], rank: (c: Candidate) => number[]): Candidate | undefined {
  const sorted = list.map((c) => ({ c, r: rank(c) })).sort((x, y) => compareRanks(y.r, x.r));
  if (sorted.length === 0 || (sorted.length > 1 && compareRanks(sorted[0].r, sorted[1].r) === 0)) return undefined;
  return sorted[0].c;
}

function compareRanks(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function contextScore(text: string, at: number, a: Annotation): number {
  let score = 0;
  while (score < a.prefix.length && at - score - 1 >= 0 && text[at - score - 1] === a.prefix[a.prefix.length - score - 1]) score++;
  const end = at + a.text.length;
  let k = 0;
  while (k < a.suffix.length && end + k < text.length && text[end + k] === a.suffix[k]) k++;
  return score + k;
}
