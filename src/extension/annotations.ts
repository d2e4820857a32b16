/**
 * Annotations in VS Code: after an inspection, the sample's AnnotationSession (saved under
 * .mamba-scope/annotations/ in its workspace folder) receives the panel's edits, annotated
 * spans get an underline whose hover shows the label and note (as plain text: never rendered
 * as markdown or HTML), edits to the document re-anchor them (stale ones stay in the file and
 * the panel's list, undecorated), and Export/Import Annotations… write and read JSON, JSONL
 * and CSV. The logic lives in annotationSession.ts; this file is only the VS Code glue.
 */
import * as vscode from 'vscode';
import { EXCHANGE_FORMATS, formatFromName } from '../engine/annotations';
import { InputError } from '../engine/errors';
import { AnnotationFileStore } from '../node/annotationFileStore';
import type { AnnotationEdit } from '../protocol';
import { AnnotationSession } from './annotationSession';
import type { TokenDecorations } from './decorations';
import type { Models } from './models';
import type { InspectorPanel } from './panel';

/** Typing pauses this long before the annotations are re-anchored and saved. */
const REANCHOR_DELAY_MS = 400;

export class AnnotationController implements vscode.Disposable {
  private session: AnnotationSession | undefined;
  private document: vscode.TextDocument | undefined;
  private panel: InspectorPanel | undefined;
  private readonly decoration: vscode.TextEditorDecorationType;
  private readonly disposables: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Edits for a run whose session is still opening (the panel's detector answers right after the run). */
  private early: AnnotationEdit[] = [];
  /** Annotations drawn in the editor at the last render (VS Code cannot be asked). */
  private decorated = 0;

  constructor(private readonly models: Models, private readonly decorations: TokenDecorations, private readonly report: (e: unknown) => void) {
    this.decoration = vscode.window.createTextEditorDecorationType({
      borderStyle: 'none none dotted none',
      borderWidth: '2px',
      borderColor: new vscode.ThemeColor('editorInfo.foreground'),
      rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
    });
    this.disposables.push(
      this.decoration,
      vscode.workspace.onDidChangeTextDocument((e) => e.document === this.document && e.contentChanges.length > 0 && this.scheduleReanchor()),
      vscode.window.onDidChangeVisibleTextEditors(() => this.render()),
    );
  }

  /** Opens the annotations of the sample just inspected (TokenDecorations.current) for run `runId`. */
  async attach(panel: InspectorPanel, runId: string): Promise<void> {
    const ins = this.decorations.current;
    if (!ins) return;
    const doc = ins.document;
    const folder = vscode.workspace.getWorkspaceFolder(doc.uri);
    if (!folder || doc.uri.scheme !== 'file' || folder.uri.scheme !== 'file') {
      this.session = undefined;
      this.document = undefined;
      this.early = [];
      return; // Annotations are stored in a workspace folder on disk: an untitled or outside file has none.
    }
    const model = await this.models.get();
    const text = doc.getText();
    this.session = await AnnotationSession.open(new AnnotationFileStore(folder.uri.fsPath), {
      runId,
      path: doc.uri.fsPath,
      text,
      offsets: ins.offsets.map(([s, e]) => [ins.start + s, ins.start + e] as const),
      model: { id: model.ref.label, configSha256: model.hashes.config },
      tokenizerSha256: model.hashes.tokenizer,
    });
    this.document = doc;
    for (const e of this.early.filter((x) => x.runId === runId)) this.session.apply(e);
    if (this.early.some((x) => x.runId === runId && AnnotationSession.changesFile(x))) await this.session.save();
    this.early = [];
    if (this.panel !== panel) {
      this.panel = panel;
      panel.rpc.on('annotationEdit', (edit) => void this.edit(edit).catch(this.report));
      panel.onDisposed(() => (this.panel = undefined));
    }
    this.publish();
  }

  /** An edit from the panel: applied to the session, saved when it changes the file. */
  async edit(edit: AnnotationEdit): Promise<void> {
    const s = this.session;
    if (!s || edit.runId !== s.runId) {
      // The run's session may still be opening: attach() applies these (the last few are plenty).
      this.early = [...this.early.slice(-15), edit];
      return;
    }
    s.apply(edit);
    if (AnnotationSession.changesFile(edit)) await s.save();
    this.publish();
  }

  /** Sends the list to the panel and redraws the editor. */
  private publish(): void {
    if (this.session && this.panel) this.panel.rpc.notify('setAnnotations', this.session.forPanel());
    this.render();
  }

  private render(): void {
    const s = this.session, doc = this.document;
    if (!s || !doc) return;
    const options = s.file.annotations
      .filter((a) => !a.stale)
      .map((a): vscode.DecorationOptions => {
        const hover = new vscode.MarkdownString();
        // appendText escapes: a note is shown exactly as typed, never as markdown or HTML.
        hover.appendText(`Mamba Scope annotation: ${a.label}${a.layer === null ? '' : ` (layer ${a.layer})`}${a.note ? `\n${a.note}` : ''}`);
        return { range: new vscode.Range(doc.positionAt(a.start), doc.positionAt(a.end)), hoverMessage: hover };
      });
    for (const editor of vscode.window.visibleTextEditors) {
      if (editor.document === doc) editor.setDecorations(this.decoration, options);
    }
    this.decorated = options.length;
  }

  stats(): { file: string | undefined; decorated: number; stale: number } {
    const s = this.session;
    return { file: s?.fileName, decorated: this.decorated, stale: s ? s.file.annotations.filter((a) => a.stale).length : 0 };
  }

  private scheduleReanchor(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reanchor().catch(this.report), REANCHOR_DELAY_MS);
  }

  /** The text changed: re-tokenize it, re-anchor, save (stale annotations are kept, not drawn). */
  private async reanchor(): Promise<void> {
    const s = this.session, doc = this.document;
    if (!s || !doc || doc.isClosed) return;
    const text = doc.getText();
    const model = await this.models.get();
    const stale = s.textChanged(text, model.tokenizer.encode(text).offsets);
    await s.save();
    this.publish();
    if (stale.length) vscode.window.setStatusBarMessage(`Mamba Scope: ${stale.length} annotation${stale.length > 1 ? 's' : ''} no longer found in the text (kept, listed as stale in the panel)`, 5000);
  }

  async exportAnnotations(): Promise<void> {
    const s = this.session;
    if (!s) {
      void vscode.window.showInformationMessage('Mamba Scope: inspect a file of a workspace folder first; Export Annotations saves its annotations.');
      return;
    }
    const target = await vscode.window.showSaveDialog({
      title: 'Mamba Scope: Export Annotations',
      defaultUri: vscode.Uri.file(`${s.path}.annotations.json`),
      filters: { JSON: ['json'], 'JSON Lines': ['jsonl'], CSV: ['csv'] },
    });
    if (!target) return;
    const format = formatFromName(target.path) ?? 'json';
    await vscode.workspace.fs.writeFile(target, new TextEncoder().encode(s.exportAs(format)));
    vscode.window.setStatusBarMessage(`Mamba Scope: exported ${s.file.annotations.length} annotations to ${target.fsPath}`, 5000);
  }

  async importAnnotations(): Promise<void> {
    const s = this.session;
    if (!s) {
      void vscode.window.showInformationMessage('Mamba Scope: inspect the file to import annotations into first.');
      return;
    }
    const [source] = (await vscode.window.showOpenDialog({ title: 'Mamba Scope: Import Annotations', canSelectMany: false, filters: { Annotations: [...EXCHANGE_FORMATS] } })) ?? [];
    if (!source) return;
    const format = formatFromName(source.path);
    if (!format) throw new InputError(source.fsPath, 'is not a .json, .jsonl or .csv file');
    s.importFrom(new TextDecoder().decode(await vscode.workspace.fs.readFile(source)), format, source.fsPath);
    await s.save();
    this.publish();
  }

  dispose(): void {
    clearTimeout(this.timer);
    for (const d of this.disposables) d.dispose();
  }
}
