/**
 * "Inspect Selection" / "Inspect File": tokenize the sample on the host, make sure the panel holds
 * the model's weights, run the forward in the panel, then tint the editor. One inspection at a
 * time: starting another cancels the one in flight, so the panel and the editor always show the
 * latest request and never a mix of two.
 */
import * as vscode from 'vscode';
import { CancelledError, InputError, isMambaScopeError } from '../engine/errors';
import type { Progress, RunParams, RunSummary, ViewSettings } from '../protocol';
import type { TokenDecorations } from './decorations';
import type { Models } from './models';
import type { InspectorPanel } from './panel';
import { readSettings, viewSettings } from './settings';

export interface InspectionResult {
  readonly runId: string;
  readonly sampleName: string;
  readonly tokens: number;
  /** Tokens in the sample before mambaScope.maxTokens cut it. */
  readonly totalTokens: number;
  readonly summary: RunSummary;
  /** Wall time of the whole command (the forward alone is summary.forwardMs). */
  readonly ms: number;
}

let runCounter = 0;

export class Inspector {
  private inFlight: AbortController | undefined;
  private last: { document: vscode.TextDocument; range: vscode.Range; isSelection: boolean } | undefined;

  constructor(
    private readonly openPanel: (settings: ViewSettings) => InspectorPanel,
    private readonly models: Models,
    private readonly decorations: TokenDecorations,
  ) {}

  /** The sample is the selection when `selectionOnly` (and one exists), else the whole document. */
  inspect(editor: vscode.TextEditor, selectionOnly: boolean): Promise<InspectionResult> {
    const doc = editor.document;
    const sel = editor.selection;
    const useSelection = selectionOnly && !sel.isEmpty;
    const range = useSelection ? new vscode.Range(sel.start, sel.end) : new vscode.Range(doc.positionAt(0), doc.positionAt(doc.getText().length));
    return this.inspectRange(doc, range, useSelection);
  }

  /**
   * Inspects the last sample again (the panel restarted, e.g. for a new backend setting), unless
   * an inspection is already on its way: that one will fill the restarted panel.
   */
  async rerun(): Promise<InspectionResult | undefined> {
    const last = this.last;
    if (!last || last.document.isClosed || this.inFlight) return undefined;
    return this.inspectRange(last.document, last.range, last.isSelection);
  }

  private async inspectRange(doc: vscode.TextDocument, range: vscode.Range, isSelection: boolean): Promise<InspectionResult> {
    const started = Date.now();
    const fileName = doc.uri.path.split('/').pop() || doc.uri.toString();
    const text = doc.getText(range);
    const sampleName = isSelection ? `${fileName}:${range.start.line + 1}-${range.end.line + 1}` : fileName;
    if (text.trim() === '') throw new InputError(sampleName, isSelection ? 'the selection is empty or only whitespace: nothing to inspect' : 'is empty: nothing to inspect');
    this.last = { document: doc, range, isSelection };

    this.inFlight?.abort();
    const controller = new AbortController();
    this.inFlight = controller;
    try {
      const settings = readSettings();
      const model = await this.models.get();
      const encoded = model.tokenizer.encode(text);
      const totalTokens = encoded.ids.length;
      if (totalTokens === 0) throw new InputError(sampleName, 'produced no tokens');
      const n = Math.min(totalTokens, settings.maxTokens);
      const ids = encoded.ids.slice(0, n);
      const badId = ids.find((id) => id < 0 || id >= model.config.vocabSize);
      if (badId !== undefined) {
        throw new InputError(`${model.ref.label} tokenizer.json`, `gives token id ${badId}, outside the model's vocabulary of ${model.config.vocabSize}: tokenizer and model do not belong together`);
      }
      const panel = this.openPanel(viewSettings(settings));
      const runId = `run-${++runCounter}`;
      const params: RunParams = {
        runId,
        modelId: model.id,
        sampleName,
        ids: ids.buffer as ArrayBuffer,
        tokens: encoded.tokens.slice(0, n),
        offsets: encoded.offsets.slice(0, n),
        settings: { backend: settings.backend, memoryLimitMB: settings.runMemoryLimitMB },
      };
      const summary = await withCancellableProgress(`Mamba Scope: ${sampleName}`, controller, async (report) => {
        await panel.ensureModel(model, controller.signal, report);
        try {
          return await panel.run(params, controller.signal, report);
        } catch (e) {
          // The panel let go of the weights (the backend moved between tfjs and the native WebGPU engine): send them again, once.
          if (!(isMambaScopeError(e) && e.kind === 'model-released')) throw e;
          await panel.ensureModel(model, controller.signal, report);
          return panel.run(params, controller.signal, report);
        }
      });
      const start = doc.offsetAt(range.start);
      this.decorations.show(
        { document: doc, start, end: doc.offsetAt(range.end), ids, tokens: params.tokens, offsets: params.offsets, summary, tokenText: (id) => model.tokenizer.tokenText(id) },
        settings.metric,
        Math.min(settings.defaultLayer, model.config.nLayer - 1),
      );
      if (summary.note) void vscode.window.showWarningMessage(`Mamba Scope: ${sampleName}: ${summary.note}.`);
      if (n < totalTokens) {
        void vscode.window.showWarningMessage(`Mamba Scope: inspected the first ${n} of ${totalTokens} tokens of ${sampleName} (setting mambaScope.maxTokens).`);
      }
      return { runId, sampleName, tokens: n, totalTokens, summary, ms: Date.now() - started };
    } finally {
      if (this.inFlight === controller) this.inFlight = undefined;
    }
  }

  cancel(): void {
    this.inFlight?.abort();
  }
}

/** A notification with a Cancel button whose click aborts `controller`; progress shows stage and count. */
export function withCancellableProgress<T>(title: string, controller: AbortController, task: (report: (p: Progress) => void) => Promise<T>): Promise<T> {
  return Promise.resolve(
    vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
      const sub = token.onCancellationRequested(() => controller.abort());
      let lastFraction = 0;
      let lastStage = '';
      try {
        return await task((p) => {
          if (p.stage !== lastStage) [lastStage, lastFraction] = [p.stage, 0];
          // withProgress takes increments; turn the absolute done/total into one.
          const fraction = p.total > 0 ? p.done / p.total : 0;
          progress.report({ message: `${p.stage}${p.total > 1 ? ` ${p.done}/${p.total}` : ''}`, increment: Math.max(0, (fraction - lastFraction) * 100) });
          lastFraction = fraction;
        });
      } finally {
        sub.dispose();
      }
    }),
  );
}

export function isCancelled(e: unknown): boolean {
  return e instanceof CancelledError;
}
