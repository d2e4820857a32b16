/**
 * After an inspection, the sample's editor shows each token tinted by the chosen per-token metric
 * of the chosen layer (16 intensity levels, one decoration type each: a type per colour is how VS
 * Code draws many colours cheaply), and hovering a token shows its values. Decorations are never
 * left wrong: an edit inside the inspected range clears them (the values no longer describe the
 * text); edits before it only shift the range, which VS Code's decorations follow by themselves.
 *
 * A long run (more than FULL_RESOLUTION_TOKENS tokens) has per-token values only for the window
 * the panel shows at full resolution: the decorations and their hover cover that window, and
 * follow it when the panel sends the next one (setWindow); the tokens outside it stay untinted.
 */
import * as vscode from 'vscode';
import { fromTensorMessage, TOKEN_METRICS, type RunSummary, type TokenMetric, type TokenSummary } from '../protocol';

export const LEVELS = 16;

const METRIC_LABEL: Record<TokenMetric, string> = {
  delta: 'mean Δ',
  gate: 'mean silu(z) (output gate)',
  forget: 'mean exp(Δ·A) (forget factor)',
  write: 'mean |Δ·u|·‖B‖ (write magnitude)',
};

export interface Inspection {
  readonly document: vscode.TextDocument;
  /** Document offset where the sample starts; token offsets are relative to it. */
  start: number;
  /** Document offset one past the sample. */
  end: number;
  readonly ids: Int32Array;
  readonly tokens: readonly string[];
  readonly offsets: readonly (readonly [number, number])[];
  readonly summary: RunSummary;
  /** What the tokens are tinted by now: the run's summary, or the window a long run's panel moved to since. */
  shown?: TokenSummary;
  /** Readable text of a token id, for the next-token line of the hover. */
  readonly tokenText: (id: number) => string;
}

export class TokenDecorations implements vscode.Disposable {
  private readonly levels: vscode.TextEditorDecorationType[];
  private readonly selected: vscode.TextEditorDecorationType;
  private inspection: Inspection | undefined;
  private metric: TokenMetric = 'delta';
  private layer = 0;
  private selectedToken: number | null = null;
  private readonly disposables: vscode.Disposable[] = [];
  /** Counts how many tokens each level holds in the last render; tests read it. */
  lastRender: { decorated: number; levels: number[] } = { decorated: 0, levels: [] };

  constructor() {
    this.levels = Array.from({ length: LEVELS }, (_, i) =>
      vscode.window.createTextEditorDecorationType({
        // Warm tint whose opacity carries the value: readable over both light and dark themes.
        backgroundColor: `rgba(255, 140, 0, ${(0.06 + (0.54 * i) / (LEVELS - 1)).toFixed(3)})`,
        rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
      }),
    );
    this.selected = vscode.window.createTextEditorDecorationType({
      borderStyle: 'solid',
      borderWidth: '1px',
      borderColor: new vscode.ThemeColor('focusBorder'),
      rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
    });
    this.disposables.push(
      vscode.workspace.onDidChangeTextDocument((e) => this.onEdit(e)),
      vscode.workspace.onDidCloseTextDocument((d) => d === this.inspection?.document && this.clear()),
      vscode.window.onDidChangeVisibleTextEditors(() => this.render()),
    );
  }

  get current(): Inspection | undefined {
    return this.inspection;
  }

  show(inspection: Inspection, metric: TokenMetric, layer: number): void {
    this.clear();
    this.inspection = inspection;
    this.metric = metric;
    this.layer = layer;
    this.render();
  }

  /** A long run's panel moved its window: tint the tokens of the new one (ignored for another run). */
  setWindow(summary: TokenSummary): void {
    const ins = this.inspection;
    if (!ins || summary.runId !== ins.summary.runId) return;
    ins.shown = summary;
    this.render();
  }

  setView(metric: TokenMetric, layer: number): void {
    if (metric === this.metric && layer === this.layer) return;
    this.metric = metric;
    this.layer = layer;
    this.render();
  }

  /** Boxes the panel's selected token in the editor and scrolls it into view. */
  select(token: number | null): void {
    this.selectedToken = token;
    const ins = this.inspection;
    for (const editor of this.editors()) {
      const range = ins && token !== null && token < ins.offsets.length ? this.rangeOf(ins, token) : undefined;
      editor.setDecorations(this.selected, range ? [range] : []);
      if (range) editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
    }
  }

  /** The inspected token under a document offset, if any. */
  tokenAt(document: vscode.TextDocument, offset: number): number | undefined {
    const ins = this.inspection;
    if (!ins || ins.document !== document || offset < ins.start || offset > ins.end) return undefined;
    const rel = offset - ins.start;
    let lo = 0;
    let hi = ins.offsets.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [s, e] = ins.offsets[mid];
      if (rel < s) hi = mid - 1;
      else if (rel >= e) lo = mid + 1;
      else return mid;
    }
    return undefined;
  }

  clear(): void {
    for (const editor of this.editors()) {
      for (const t of this.levels) editor.setDecorations(t, []);
      editor.setDecorations(this.selected, []);
    }
    this.inspection = undefined;
    this.selectedToken = null;
    this.lastRender = { decorated: 0, levels: [] };
  }

  dispose(): void {
    this.clear();
    for (const t of [...this.levels, this.selected]) t.dispose();
    for (const d of this.disposables) d.dispose();
  }

  private editors(): readonly vscode.TextEditor[] {
    const doc = this.inspection?.document;
    return doc ? vscode.window.visibleTextEditors.filter((e) => e.document === doc) : [];
  }

  private rangeOf(ins: Inspection, token: number): vscode.Range {
    const [s, e] = ins.offsets[token];
    return new vscode.Range(ins.document.positionAt(ins.start + s), ins.document.positionAt(ins.start + e));
  }

  private render(): void {
    const ins = this.inspection;
    if (!ins) return;
    const summary = ins.shown ?? ins.summary;
    const [start, end] = coveredTokens(summary, ins.offsets.length);
    const W = end - start;
    const values = metricRows(summary, W);
    const row = Math.max(0, summary.layers.indexOf(this.layer));
    const shown = values[this.metric].subarray(row * W, (row + 1) * W);
    const levelOf = levelMapper(shown, this.metric === 'forget');
    const buckets: vscode.DecorationOptions[][] = Array.from({ length: LEVELS }, () => []);
    for (let t = start; t < end; t++) {
      const level = levelOf(shown[t - start]);
      if (level === null || ins.offsets[t][1] <= ins.offsets[t][0]) continue;
      buckets[level].push({ range: this.rangeOf(ins, t), hoverMessage: this.hover(ins, summary, values, row, t) });
    }
    for (const editor of this.editors()) buckets.forEach((b, i) => editor.setDecorations(this.levels[i], b));
    this.lastRender = { decorated: buckets.reduce((n, b) => n + b.length, 0), levels: buckets.map((b) => b.length) };
    if (this.selectedToken !== null) this.select(this.selectedToken);
  }

  /** `t`: a token of the summary's window; `values` and `next` are indexed from the window's start. */
  private hover(ins: Inspection, summary: TokenSummary, values: Record<TokenMetric, Float32Array>, row: number, t: number): vscode.MarkdownString {
    const [start, end] = coveredTokens(summary, ins.offsets.length);
    const W = end - start, i = t - start;
    const md = new vscode.MarkdownString();
    md.appendMarkdown(`**Mamba Scope** · token ${t} · id ${ins.ids[t]} · layer ${summary.layers[row]}\n\n`);
    md.appendCodeblock(JSON.stringify(ins.tokens[t]), 'json');
    md.appendMarkdown('| metric | value |\n|---|---:|\n');
    for (const m of TOKEN_METRICS) {
      const mark = m === this.metric ? ' ◀' : '';
      md.appendMarkdown(`| ${METRIC_LABEL[m]}${mark} | ${formatValue(values[m][row * W + i])} |\n`);
    }
    const next = summary.next;
    if (next) {
      const ids = fromTensorMessage(next.ids, 'next.ids').data;
      const probs = fromTensorMessage(next.probs, 'next.probs').data;
      md.appendMarkdown(`\nmost likely next: \`${JSON.stringify(ins.tokenText(ids[i]))}\` (${(probs[i] * 100).toFixed(1)} %)`);
    }
    return md;
  }

  private onEdit(e: vscode.TextDocumentChangeEvent): void {
    const ins = this.inspection;
    if (!ins || e.document !== ins.document || e.contentChanges.length === 0) return;
    let shift = 0;
    for (const c of e.contentChanges) {
      // Offsets are in the document before this event, so shifts of separate edits add up.
      if (c.rangeOffset + c.rangeLength <= ins.start && (c.rangeOffset < ins.start || c.rangeLength === 0)) {
        shift += c.text.length - c.rangeLength;
      } else if (c.rangeOffset > ins.end) {
        continue;
      } else {
        this.clear();
        return;
      }
    }
    ins.start += shift;
    ins.end += shift;
  }
}

/** The tokens [start, end) a summary has values for: its window, or all `L` of the run. */
function coveredTokens(summary: TokenSummary, L: number): readonly [number, number] {
  return summary.window ?? [0, L];
}

/** The summary's float32 [layers, L] rows per metric (L: the tokens it covers), decoded once per render; a metric the panel left out reads NaN (undecorated). */
function metricRows(summary: TokenSummary, L: number): Record<TokenMetric, Float32Array> {
  const out = {} as Record<TokenMetric, Float32Array>;
  for (const m of TOKEN_METRICS) {
    const msg = summary.perToken[m];
    out[m] = msg ? (fromTensorMessage(msg, `perToken.${m}`).data as Float32Array) : new Float32Array(summary.layers.length * L).fill(NaN);
  }
  return out;
}

/**
 * Value → level 0..LEVELS-1 over the sample's own range (min = faintest). `invert` for the forget
 * factor: the interesting tokens are the near-resets, where it is small. Non-finite → null.
 */
export function levelMapper(values: ArrayLike<number>, invert: boolean): (v: number) => number | null {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  const span = max - min;
  return (v) => {
    if (!Number.isFinite(v)) return null;
    const x = span > 0 ? (v - min) / span : 0.5;
    return Math.round((invert ? 1 - x : x) * (LEVELS - 1));
  };
}

function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : v.toFixed(4);
}
