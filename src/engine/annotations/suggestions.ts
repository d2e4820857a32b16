/**
 * The detector's suggestions ("token s is forgotten at token t in layer ℓ") and what the user
 * does with them: accept (they become annotations with origin 'detector-accepted') or reject
 * (recorded as dismissals so the same text does not suggest them again). One or many at once.
 */
import { addAnnotation, nowIso, spanOfTokens, type EditContext, type Span, type TokenOffsets } from './edit';
import type { AnnotationFile, Dismissal } from './schema';

export interface Suggestion {
  readonly layer: number;
  readonly tokenIndex: number;
  /** First position where the token's retention fell below the threshold. */
  readonly forgottenAt: number;
  readonly threshold: number;
  readonly span: Span;
}

/**
 * One suggestion per forgotten token of a layer. `forgottenAt` is Retention.forgottenAt's
 * result (−1 = retained). Zero-width tokens (special tokens) cannot be annotated and are skipped.
 * `from`: the sample's position of forgottenAt[0], whose values are positions of the sample too
 * (a long run's detector covers the window in view).
 */
export function suggestionsFromForgotten(layer: number, forgottenAt: ArrayLike<number>, threshold: number, sampleText: string, offsets: TokenOffsets, from = 0): Suggestion[] {
  const out: Suggestion[] = [];
  for (let i = 0; i < forgottenAt.length; i++) {
    const t = forgottenAt[i], s = from + i;
    if (t < 0 || offsets[s][1] <= offsets[s][0]) continue;
    out.push({ layer, tokenIndex: s, forgottenAt: t, threshold, span: spanOfTokens(sampleText, offsets, s, s + 1) });
  }
  return out;
}

/** Suggestions still open: not dismissed for this text, and the token not already annotated in that layer. */
export function pendingSuggestions(file: AnnotationFile, suggestions: readonly Suggestion[]): Suggestion[] {
  const dismissed = new Set(file.dismissed.filter((d) => d.sampleSha256 === file.sample.sha256).map(dismissalKey));
  return suggestions.filter(
    (s) =>
      !dismissed.has(dismissalKey({ layer: s.layer, start: s.span.start, end: s.span.end })) &&
      !file.annotations.some((a) => !a.stale && a.layer === s.layer && a.tokenStart <= s.tokenIndex && s.tokenIndex < a.tokenEnd),
  );
}

/** The causal check of a suggestion: the mean KL of the outputs from forgottenAt on with the token's write ablated, and ε. */
export interface CausalCheckResult {
  readonly meanKl: number;
  readonly epsilon: number;
}

/**
 * Accepted suggestions become 'forgotten' annotations that keep their evidence: the threshold
 * and forgottenAt of the retention, and the causal check's KL and ε when it was run.
 */
export function acceptSuggestions(file: AnnotationFile, suggestions: readonly (Suggestion & { readonly causal?: CausalCheckResult })[], ctx: EditContext = {}): AnnotationFile {
  let next = file;
  for (const s of suggestions) {
    const c = s.causal;
    const causal = c ? `; with its write ablated the outputs from there move by a mean KL of ${c.meanKl.toPrecision(3)} nats, ${c.meanKl < c.epsilon ? 'below' : 'not below'} ε = ${c.epsilon}: ${c.meanKl < c.epsilon ? 'causally forgotten' : 'still used'}` : '';
    const evidence = { forgottenAt: s.forgottenAt, ...(c ? { causalKl: c.meanKl, causalEpsilon: c.epsilon } : {}) };
    next = addAnnotation(next, { span: s.span, layer: s.layer, threshold: s.threshold, label: 'forgotten', note: `forgotten at token ${s.forgottenAt}${causal}`, origin: 'detector-accepted', evidence }, ctx).file;
  }
  return next;
}

export function rejectSuggestions(file: AnnotationFile, suggestions: readonly Suggestion[], ctx: EditContext = {}): AnnotationFile {
  const now = nowIso(ctx);
  const have = new Set(file.dismissed.map((d) => `${dismissalKey(d)}@${d.sampleSha256}`));
  const added: Dismissal[] = [];
  for (const s of suggestions) {
    const d: Dismissal = { layer: s.layer, start: s.span.start, end: s.span.end, sampleSha256: file.sample.sha256, dismissedAt: now };
    const key = `${dismissalKey(d)}@${d.sampleSha256}`;
    if (have.has(key)) continue;
    added.push(d);
    have.add(key);
  }
  return { ...file, dismissed: [...file.dismissed, ...added] };
}

export function dismissalKey(d: { layer: number; start: number; end: number }): string {
  return `${d.layer}:${d.start}:${d.end}`;
}
