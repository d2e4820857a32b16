/**
 * The annotations of one inspected sample, on the host: applies the panel's edits with the
 * engine's pure functions, keeps the detector's latest result per layer to offer its open
 * suggestions, saves through AnnotationFileStore (atomic, locked, merging other windows' work),
 * re-anchors when the text changes, and imports/exports. No vscode import: unit-tested in Node.
 *
 * Offsets: the sample is the whole document; a run of a selection contributes its tokens'
 * offsets shifted to document positions, so an annotation outside the selection is still kept
 * and anchored, with an empty token range in this run.
 */
import {
  acceptSuggestions,
  addAnnotation,
  deleteAnnotations,
  emptyAnnotationFile,
  exportAnnotations,
  importInto,
  pendingSuggestions,
  reanchor,
  rejectSuggestions,
  spanOfTokens,
  suggestionsFromForgotten,
  updateAnnotation,
  type AnnotationFile,
  type ExchangeFormat,
  type ModelRef,
  type Suggestion,
  type TokenOffsets,
} from '../engine/annotations';
import { sha256Hex } from '../engine/annotations/sha256';
import { InputError } from '../engine/errors';
import type { AnnotationFileStore } from '../node/annotationFileStore';
import type { Annotation, AnnotationEdit, AnnotationSuggestion } from '../protocol';

export interface AnnotatedSample {
  readonly runId: string;
  /** File system path of the sample (the store names the annotation file after it). */
  readonly path: string;
  /** The whole document. */
  readonly text: string;
  /** The run's token offsets in document positions. */
  readonly offsets: TokenOffsets;
  readonly model: ModelRef | null;
  readonly tokenizerSha256: string | null;
}

export class AnnotationSession {
  /** Detector result per layer, for the current text. */
  private readonly detected = new Map<number, Suggestion[]>();
  /** Saves run one after another: each merges into what the previous one wrote. */
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    private readonly store: AnnotationFileStore,
    private sample: AnnotatedSample,
    private mine: AnnotationFile,
    private base: AnnotationFile | null,
  ) {}

  static async open(store: AnnotationFileStore, sample: AnnotatedSample): Promise<AnnotationSession> {
    const base = await store.read(sample.path);
    const start = base ?? emptyAnnotationFile({ path: store.sampleKey(sample.path), sha256: '', length: sample.text.length }, sample.model, sample.tokenizerSha256 ? { sha256: sample.tokenizerSha256 } : null);
    return new AnnotationSession(store, sample, reanchor(start, sample.text, sample.offsets).file, base);
  }

  get runId(): string {
    return this.sample.runId;
  }

  get path(): string {
    return this.sample.path;
  }

  /** The annotation file this session saves to. */
  get fileName(): string {
    return this.store.fileFor(this.sample.path);
  }

  get file(): AnnotationFile {
    return this.mine;
  }

  /** Applies one edit from the panel; throws InputError for an edit that does not fit the run. */
  apply(edit: AnnotationEdit): void {
    if (edit.runId !== this.sample.runId) throw new InputError('annotation edit', `is for run ${edit.runId}, not the current run ${this.sample.runId}`);
    const { text, offsets } = this.sample;
    switch (edit.op) {
      case 'add': {
        const [s, e] = edit.tokens;
        const span = spanOfTokens(text, offsets, s, e);
        this.mine = addAnnotation(this.mine, { span, layer: edit.layer, threshold: edit.threshold, label: edit.label, note: edit.note }).file;
        return;
      }
      case 'update':
        this.mine = updateAnnotation(this.mine, edit.id, { label: edit.label, note: edit.note });
        return;
      case 'remove':
        this.mine = deleteAnnotations(this.mine, edit.ids);
        return;
      case 'detect': {
        const from = edit.from ?? 0;
        if (!Number.isInteger(from) || from < 0 || from + edit.forgottenAt.length > offsets.length) {
          throw new InputError('annotation edit', `detects tokens ${from}–${from + edit.forgottenAt.length - 1}, outside the sample's ${offsets.length} tokens`);
        }
        this.detected.set(edit.layer, suggestionsFromForgotten(edit.layer, edit.forgottenAt, edit.threshold, text, offsets, from));
        return;
      }
      case 'accept':
      case 'reject': {
        const picked = edit.suggestions.map(({ layer, token, causal }) => {
          const s = this.detected.get(layer)?.find((x) => x.tokenIndex === token);
          if (!s) throw new InputError('annotation edit', `no open suggestion for token ${token} in layer ${layer}`);
          return causal ? { ...s, causal } : s;
        });
        this.mine = edit.op === 'accept' ? acceptSuggestions(this.mine, picked) : rejectSuggestions(this.mine, picked);
      }
    }
  }

  /** Whether an edit changes the saved file (detector results are not saved). */
  static changesFile(edit: AnnotationEdit): boolean {
    return edit.op !== 'detect';
  }

  /** Writes the annotations, merged with whatever another window saved meanwhile. */
  save(): Promise<void> {
    const run = this.saving.then(async () => {
      const saved = await this.store.save(this.sample.path, this.mine, this.base, { text: this.sample.text, offsets: this.sample.offsets });
      this.mine = saved;
      this.base = saved;
    });
    this.saving = run.catch(() => undefined);
    return run;
  }

  /**
   * The document changed: re-anchor to its new text and tokens. Detector results no longer apply.
   * Returns the ids that became stale.
   */
  textChanged(text: string, offsets: TokenOffsets): string[] {
    this.sample = { ...this.sample, text, offsets };
    this.detected.clear();
    const r = reanchor(this.mine, text, offsets, sha256Hex(text));
    this.mine = r.file;
    return r.stale;
  }

  exportAs(format: ExchangeFormat): string {
    return exportAnnotations(this.mine, format);
  }

  /** Adds the annotations of an exported file (merged by id; re-anchored to the current text). */
  importFrom(contents: string, format: ExchangeFormat, source: string): void {
    this.mine = reanchor(importInto(this.mine, contents, format, source), this.sample.text, this.sample.offsets).file;
  }

  /** What the panel shows: every annotation (stale ones too) and the open suggestions. */
  forPanel(): { runId: string; annotations: Annotation[]; suggestions: AnnotationSuggestion[] } {
    const all = [...this.detected.values()].flat();
    return {
      runId: this.sample.runId,
      annotations: this.mine.annotations.map((a) => ({
        id: a.id,
        runId: this.sample.runId,
        tokens: [a.tokenStart, a.tokenEnd] as const,
        layer: a.layer,
        label: a.label,
        note: a.note,
        text: a.text,
        stale: a.stale,
        forgottenAt: a.forgottenAt,
        causal: a.causalKl === null || a.causalEpsilon === null ? null : { meanKl: a.causalKl, epsilon: a.causalEpsilon },
      })),
      suggestions: pendingSuggestions(this.mine, all).map((s) => ({ layer: s.layer, token: s.tokenIndex, forgottenAt: s.forgottenAt })),
    };
  }
}
