/**
 * Entry point: registers the commands, the tensor-file editor, the status bar and the links
 * between the panel and the editor (panel selection → editor highlight, editor cursor → panel
 * selection, panel layer/metric → decorations). Returns a small API the e2e suite drives.
 */
import * as vscode from 'vscode';
import { isMambaScopeError } from '../engine/errors';
import { archName } from '../engine/model/config';
import { RemoteError, type AnnotationEdit, type ExportKind, type InterventionSummary, type PanelDescription, type Selection, type ViewSettings } from '../protocol';
import { parseIntervention } from '../engine/interventions';
import { AnnotationController } from './annotations';
import { compareDumps } from './compareCommand';
import { TokenDecorations } from './decorations';
import { DUMP_VIEW_TYPE, TensorDumpEditorProvider } from './dumpEditor';
import { saveExport } from './exports';
import { Inspector, isCancelled, withCancellableProgress, type InspectionResult } from './inspect';
import { Models, refFromUri, type ModelRef } from './models';
import { InspectorPanel } from './panel';
import { readSettings, viewSettings } from './settings';
import { StatusItem } from './statusBar';

/** What `vscode.extensions.getExtension('mamba-scope.mamba-scope').exports` gives (tests, other extensions). */
export interface MambaScopeApi {
  inspect(uri: vscode.Uri, range?: vscode.Range): Promise<InspectionResult>;
  describePanel(): Promise<PanelDescription>;
  /** Tokens decorated in the editor by level, after the last render. */
  decorationStats(): { decorated: number; levels: number[] };
  /** As if the editor's cursor moved onto `token` of the current inspection (and, given `layer`, as if that layer were picked). */
  selectToken(token: number, layer?: number): void;
  lastSelection(): Selection | undefined;
  /** `view`: a view id (default: the view used last). */
  exportView(kind: ExportKind, target: vscode.Uri, view?: string): Promise<string | null>;
  /** What the tensor viewer of `uri` shows (it must be open). */
  describeDump(uri: vscode.Uri): Promise<PanelDescription>;
  /** As if the panel sent this annotation edit for the current inspection. */
  annotate(edit: DistributiveOmit<AnnotationEdit, 'runId'>): Promise<void>;
  /** The current sample's annotation file, and how many annotations are drawn in the editor / stale. */
  annotationStats(): { file: string | undefined; decorated: number; stale: number };
}

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

/** `npm run demo` sets this to a file: it is opened and inspected as soon as VS Code is up. */
const DEMO_ENV = 'MAMBA_SCOPE_INSPECT_ON_STARTUP';

export function activate(context: vscode.ExtensionContext): MambaScopeApi {
  const log = vscode.window.createOutputChannel('Mamba Scope', { log: true });
  const models = new Models(context);
  const decorations = new TokenDecorations();
  const status = new StatusItem();
  let lastSelection: Selection | undefined;
  context.subscriptions.push(log, models, decorations, status);

  const report = (e: unknown): void => {
    if (isCancelled(e)) {
      vscode.window.setStatusBarMessage('Mamba Scope: cancelled', 3000);
      return;
    }
    // Bad input and limits are the user's to fix: one line. Anything else is our bug: keep the stack in the log.
    if (isMambaScopeError(e) || e instanceof RemoteError) {
      void vscode.window.showErrorMessage(`Mamba Scope: ${e.message}`);
      log.warn(e.message);
    } else {
      const message = e instanceof Error ? e.message : String(e);
      void vscode.window.showErrorMessage(`Mamba Scope: unexpected error: ${message} (details in Output › Mamba Scope)`);
      log.error(e instanceof Error ? (e.stack ?? message) : message);
    }
  };

  /** Shows the panel; a newly created one is linked to the editor and the status bar here. */
  const openPanel = (settings: ViewSettings, preserveFocus = true): InspectorPanel => {
    const existing = InspectorPanel.current;
    const panel = InspectorPanel.show(context.extensionUri, settings, preserveFocus);
    if (panel === existing) return panel;
    panel.onBackend((info) => {
      status.setBackend(info);
      log.info(`backend ${info.backend}: ${info.reason}${info.fallbacksTried.map((f) => `; ${f.backend} failed: ${f.error}`).join('')}`);
    });
    panel.onSelection((s) => {
      lastSelection = s;
      decorations.setView(readSettings().metric, s.layer);
      decorations.select(s.token);
    });
    panel.onMetricChanged(({ metric, layer }) => decorations.setView(metric, layer));
    panel.onWindow((w) => decorations.setWindow(w));
    panel.onReloaded(() => void inspector.rerun().then((r) => r && attachAnnotations(r.runId), report));
    panel.onDisposed(() => decorations.clear());
    return panel;
  };
  const inspector = new Inspector(openPanel, models, decorations);
  const annotations = new AnnotationController(models, decorations, report);
  context.subscriptions.push(annotations);
  /** The inspected sample's annotations go to the panel and the editor (a failure leaves the inspection shown). */
  const attachAnnotations = (runId: string): void => {
    if (InspectorPanel.current) void annotations.attach(InspectorPanel.current, runId).catch(report);
  };

  const runInspection = async (selectionOnly: boolean, uri?: vscode.Uri): Promise<InspectionResult | undefined> => {
    try {
      const editor = uri ? await vscode.window.showTextDocument(uri, { preview: false }) : vscode.window.activeTextEditor;
      if (!editor) {
        void vscode.window.showInformationMessage('Mamba Scope: open a text file (or select part of one) to inspect it.');
        return undefined;
      }
      const result = await inspector.inspect(editor, selectionOnly);
      attachAnnotations(result.runId);
      status.setTokens(result.tokens);
      log.info(`${result.sampleName}: ${result.tokens} tokens, forward ${result.summary.forwardMs.toFixed(0)} ms on ${result.summary.backend.backend}, command ${result.ms} ms`);
      return result;
    } catch (e) {
      report(e);
      return undefined;
    }
  };

  const openModel = async (uri?: vscode.Uri): Promise<ModelRef | undefined> => {
    try {
      const ref = uri ? refFromUri(uri) : await pickModel(models);
      if (!ref) return undefined;
      const model = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Mamba Scope: opening ${ref.label}` }, () => models.use(ref));
      void vscode.window.showInformationMessage(`Mamba Scope: using ${ref.label} (${archName(model.config)}, ${model.config.nLayer} layers, d_model ${model.config.dModel}). Run "Inspect File" on a text.`);
      return ref;
    } catch (e) {
      report(e);
      return undefined;
    }
  };

  const exportView = async (kind?: ExportKind, target?: vscode.Uri, view?: string): Promise<string | null> => {
    const panel = InspectorPanel.current;
    if (!panel) {
      void vscode.window.showInformationMessage('Mamba Scope: inspect a text first; Export saves what the panel shows.');
      return null;
    }
    const chosen = kind ?? (await pickExportKind());
    if (!chosen) return null;
    try {
      const data = await panel.rpc.request('exportView', { kind: chosen, ...(view ? { view } : {}) });
      return (await saveExport(data, target)).savedTo;
    } catch (e) {
      report(e);
      return null;
    }
  };

  /** "Intervene…": an intervention (its one-line spec; asked for, prefilled at the panel's selection) run by the panel on the shown inspection. */
  const intervene = async (given?: string): Promise<InterventionSummary | null> => {
    const panel = InspectorPanel.current;
    const runId = panel?.lastRun?.params.runId;
    if (!panel || !runId) {
      void vscode.window.showInformationMessage('Mamba Scope: inspect a text first; interventions rerun it in the panel.');
      return null;
    }
    const at = lastSelection?.runId === runId ? lastSelection : undefined;
    const spec = given ?? (await vscode.window.showInputBox({
      title: 'Mamba Scope: Intervene',
      prompt: 'ablate-write, scale-delta, zero-state, knockout, steer, patch-state or ablate-path (docs/INTERVENTIONS.md)',
      value: `ablate-write layer=${at?.layer ?? 0} tokens=${at?.token ?? 0}`,
      validateInput: (text) => {
        try {
          parseIntervention(text);
          return null;
        } catch (e) {
          return e instanceof Error ? e.message : String(e);
        }
      },
    }));
    if (!spec) return null;
    const controller = new AbortController();
    const summary = await withCancellableProgress(`Mamba Scope: ${spec}`, controller, (report) => panel.rpc.request('intervene', { runId, interventions: [spec] }, { signal: controller.signal, onProgress: report }));
    if (summary) vscode.window.setStatusBarMessage(`Mamba Scope: ${spec}: ${summary.firstChanged === null ? 'no position changed' : `first change at token ${summary.firstChanged}`}`, 5000);
    return summary;
  };

  const dumpEditor = new TensorDumpEditorProvider(context.extensionUri);
  context.subscriptions.push(
    dumpEditor.register(),
    vscode.commands.registerCommand('mambaScope.openModel', openModel),
    vscode.commands.registerCommand('mambaScope.inspectSelection', (uri?: vscode.Uri) => runInspection(true, uri)),
    vscode.commands.registerCommand('mambaScope.inspectFile', (uri?: vscode.Uri) => runInspection(false, uri)),
    vscode.commands.registerCommand('mambaScope.openDump', async (uri?: vscode.Uri) => {
      const target =
        uri ??
        (await vscode.window.showOpenDialog({ title: 'Mamba Scope: open a tensor dump', canSelectMany: false, filters: { 'Tensor files': ['safetensors', 'npy', 'npz'] } }))?.[0];
      if (target) await vscode.commands.executeCommand('vscode.openWith', target, DUMP_VIEW_TYPE);
    }),
    vscode.commands.registerCommand('mambaScope.showPanel', () => openPanel(viewSettings(readSettings()), false)),
    vscode.commands.registerCommand('mambaScope.exportView', () => exportView()),
    vscode.commands.registerCommand('mambaScope.compareDumps', (a?: vscode.Uri, b?: vscode.Uri) =>
      compareDumps(() => openPanel(viewSettings(readSettings())), a instanceof vscode.Uri ? a : undefined, b instanceof vscode.Uri ? b : undefined).catch(report),
    ),
    vscode.commands.registerCommand('mambaScope.intervene', (spec?: string) => intervene(typeof spec === 'string' ? spec : undefined).catch((e) => (report(e), null))),
    vscode.commands.registerCommand('mambaScope.exportAnnotations', () => annotations.exportAnnotations().catch(report)),
    vscode.commands.registerCommand('mambaScope.importAnnotations', () => annotations.importAnnotations().catch(report)),
    models.onDidChange((ref) => status.setModel(ref.label)),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration('mambaScope')) return;
      const settings = readSettings();
      InspectorPanel.current?.updateSettings(viewSettings(settings));
      if (lastSelection) decorations.setView(settings.metric, lastSelection.layer);
    }),
    // The editor's cursor selects the token under it in the panel; the panel's own selections
    // move no cursor (only a highlight), so this cannot echo.
    vscode.window.onDidChangeTextEditorSelection((e) => {
      const ins = decorations.current;
      const panel = InspectorPanel.current;
      if (!ins || !panel?.lastRun || e.textEditor.document !== ins.document || e.kind === vscode.TextEditorSelectionChangeKind.Command) return;
      const token = decorations.tokenAt(ins.document, ins.document.offsetAt(e.selections[0].active));
      if (token !== undefined) panel.rpc.notify('selectToken', { runId: panel.lastRun.params.runId, token });
    }),
  );
  status.setModel(models.current().label);

  const demoFile = process.env[DEMO_ENV];
  if (demoFile) void runInspection(false, vscode.Uri.file(demoFile));

  return {
    inspect: async (uri, range) => {
      const editor = await vscode.window.showTextDocument(uri, { preview: false });
      if (range) editor.selection = new vscode.Selection(range.start, range.end);
      const result = await inspector.inspect(editor, range !== undefined);
      attachAnnotations(result.runId);
      status.setTokens(result.tokens);
      return result;
    },
    describePanel: () => {
      const panel = InspectorPanel.current;
      return panel ? panel.describe() : Promise.reject(new Error('no Mamba Scope panel is open'));
    },
    decorationStats: () => decorations.lastRender,
    selectToken: (token, layer) => {
      const panel = InspectorPanel.current;
      if (panel?.lastRun) panel.rpc.notify('selectToken', { runId: panel.lastRun.params.runId, token, ...(layer === undefined ? {} : { layer }) });
    },
    lastSelection: () => lastSelection,
    exportView: (kind, target, view) => exportView(kind, target, view),
    describeDump: (uri) => dumpEditor.describe(uri),
    annotate: (edit) => {
      const runId = InspectorPanel.current?.lastRun?.params.runId;
      if (!runId) return Promise.reject(new Error('nothing is inspected'));
      return annotations.edit({ ...edit, runId } as AnnotationEdit);
    },
    annotationStats: () => annotations.stats(),
  };
}

export function deactivate(): void {
  InspectorPanel.current?.dispose();
}

async function pickModel(models: Models): Promise<ModelRef | undefined> {
  type Item = vscode.QuickPickItem & { ref?: ModelRef; action?: 'folder' | 'file' };
  const current = models.current().uri.toString();
  const items: Item[] = [
    { label: '$(package) mamba1-demo', description: 'bundled with the extension', ref: models.bundled() },
    ...models.recent().map((ref) => ({ label: `$(history) ${ref.label}`, description: ref.uri.scheme === 'file' ? ref.uri.fsPath : ref.uri.toString(true), ref })),
    { label: '$(folder-opened) Open a model folder…', detail: 'config.json + model.safetensors or pytorch_model.bin (or shards) + tokenizer.json', action: 'folder' },
    { label: '$(file-binary) Open a .safetensors file…', detail: 'config.json and tokenizer.json are read from its folder', action: 'file' },
  ];
  for (const item of items) if (item.ref?.uri.toString() === current) item.description = `${item.description ?? ''} (current)`.trim();
  const picked = await vscode.window.showQuickPick(items, { title: 'Mamba Scope: Open Model', placeHolder: 'A Mamba / Mamba-2 checkpoint in Hugging Face layout' });
  if (!picked) return undefined;
  if (picked.ref) return picked.ref;
  const uris = await vscode.window.showOpenDialog({
    title: picked.action === 'folder' ? 'Open a model folder' : 'Open a .safetensors file',
    canSelectFolders: picked.action === 'folder',
    canSelectFiles: picked.action === 'file',
    filters: picked.action === 'file' ? { safetensors: ['safetensors'] } : undefined,
  });
  return uris?.[0] ? refFromUri(uris[0]) : undefined;
}

async function pickExportKind(): Promise<ExportKind | undefined> {
  const items: (vscode.QuickPickItem & { exportKind: ExportKind })[] = [
    { label: 'PNG', description: 'image of the focused view', exportKind: 'png' },
    { label: 'CSV', description: 'the selected tensor slice as a table', exportKind: 'csv' },
    { label: 'NPY', description: 'the selected tensor slice for NumPy', exportKind: 'npy' },
  ];
  return (await vscode.window.showQuickPick(items, { title: 'Mamba Scope: Export View' }))?.exportKind;
}
