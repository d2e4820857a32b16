/**
 * The inspector panel: one webview per window that holds the model's weights (sent once per
 * model) and renders inspections. This class owns the webview's lifecycle and the RPC to it; the
 * commands (inspect.ts) decide what to run. retainContextWhenHidden keeps the uploaded weights and
 * the views alive while the panel is in a background tab, instead of re-uploading on every switch.
 */
import * as vscode from 'vscode';
import { InputError, MambaScopeError } from '../engine/errors';
import {
  PROTOCOL_VERSION,
  Rpc,
  type BackendInfo,
  type HostApi,
  type HostRpc,
  type PanelDescription,
  type Progress,
  type RunParams,
  type RunSummary,
  type Selection,
  type TokenMetric,
  type TokenSummary,
  type ViewSettings,
  type WebviewApi,
} from '../protocol';
import { saveExport } from './exports';
import { pickInterventionFile, readInterventionFiles } from './interventionFiles';
import type { HostModel } from './models';
import { mayUseWasm, wasmPath, webviewHtml, webviewOptions } from './webviewHtml';

/** The webview bundle has to start (tfjs init included) within this time. */
const READY_TIMEOUT_MS = 60_000;

export class InspectorPanel implements vscode.Disposable {
  static readonly viewType = 'mambaScope.inspector';
  private static instance: InspectorPanel | undefined;

  readonly rpc: HostRpc;
  private ready!: Promise<void>;
  private markReady!: () => void;
  private loadedModelId: string | null = null;
  /** The model whose weights the panel may ask for (readWeight): the last one sent. */
  private weightSource: HostModel | undefined;
  private htmlBackend: ViewSettings['backend'];
  backend: BackendInfo | undefined;
  lastRun: { params: RunParams; summary: RunSummary } | undefined;

  private readonly emitter = {
    selection: new vscode.EventEmitter<Selection>(),
    metric: new vscode.EventEmitter<{ metric: TokenMetric; layer: number }>(),
    window: new vscode.EventEmitter<TokenSummary>(),
    backend: new vscode.EventEmitter<BackendInfo>(),
    reloaded: new vscode.EventEmitter<void>(),
    disposed: new vscode.EventEmitter<void>(),
  };
  readonly onSelection = this.emitter.selection.event;
  readonly onMetricChanged = this.emitter.metric.event;
  /** A long run's window in view moved: its per-token values, for the decorations. */
  readonly onWindow = this.emitter.window.event;
  readonly onBackend = this.emitter.backend.event;
  /** The webview started over (its CSP changed): weights and the last run must be sent again. */
  readonly onReloaded = this.emitter.reloaded.event;
  readonly onDisposed = this.emitter.disposed.event;
  private readonly disposables: vscode.Disposable[] = [];

  static get current(): InspectorPanel | undefined {
    return InspectorPanel.instance;
  }

  /** Reveals the panel, creating it if needed. */
  static show(extensionUri: vscode.Uri, settings: ViewSettings, preserveFocus = true): InspectorPanel {
    if (InspectorPanel.instance) {
      InspectorPanel.instance.panel.reveal(undefined, preserveFocus);
      return InspectorPanel.instance;
    }
    const panel = vscode.window.createWebviewPanel(
      InspectorPanel.viewType,
      'Mamba Scope',
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus },
      { ...webviewOptions(extensionUri), retainContextWhenHidden: true },
    );
    InspectorPanel.instance = new InspectorPanel(panel, extensionUri, settings);
    void vscode.commands.executeCommand('setContext', 'mambaScope.panelOpen', true);
    return InspectorPanel.instance;
  }

  private constructor(readonly panel: vscode.WebviewPanel, private readonly extensionUri: vscode.Uri, private settings: ViewSettings) {
    this.rpc = new Rpc<HostApi, WebviewApi>('host', (m) => panel.webview.postMessage(m), (l) => panel.webview.onDidReceiveMessage(l));
    this.rpc.on('ready', ({ protocolVersion }) => {
      if (protocolVersion !== PROTOCOL_VERSION) {
        void vscode.window.showErrorMessage(`Mamba Scope: the panel speaks protocol ${protocolVersion}, the extension ${PROTOCOL_VERSION}: rebuild the extension (npm run build).`);
        return;
      }
      const wasReady = this.loadedModelId !== null || this.lastRun !== undefined;
      this.loadedModelId = null;
      this.sendSettings();
      this.markReady();
      if (wasReady) this.emitter.reloaded.fire();
    });
    this.rpc.on('backendInfo', (info) => {
      this.backend = info;
      this.emitter.backend.fire(info);
    });
    this.rpc.on('modelReleased', ({ modelId }) => {
      if (this.loadedModelId === modelId) this.loadedModelId = null;
    });
    this.rpc.on('selectionChanged', (s) => this.emitter.selection.fire(s));
    this.rpc.on('metricChanged', (m) => this.emitter.metric.fire(m));
    this.rpc.on('windowSummary', (w) => this.emitter.window.fire(w));
    this.rpc.on('error', ({ view, error }) => {
      void vscode.window.showWarningMessage(`Mamba Scope: the ${view} view failed: ${error.source}: ${error.problem}`);
    });
    this.rpc.handle('saveExport', (data) => saveExport(data));
    this.rpc.handle('readWeight', async ({ modelId, name }) => this.sentModel(modelId).weight(name));
    this.rpc.handle('pickInterventionFile', ({ kind, dModel }) => pickInterventionFile(kind, dModel));
    this.rpc.handle('readInterventionInputs', ({ modelId, tokens, interventions }) => readInterventionFiles(interventions, tokens, this.sentModel(modelId).config));
    this.htmlBackend = settings.backend;
    this.render();
    this.disposables.push(panel.onDidDispose(() => this.dispose()));
  }

  private sentModel(modelId: string): HostModel {
    const model = this.weightSource;
    if (!model || model.id !== modelId) throw new InputError(modelId, 'is not the model the panel was sent: inspect again');
    return model;
  }

  private render(): void {
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    this.panel.webview.html = webviewHtml(this.panel.webview, this.extensionUri, { title: 'Mamba Scope', backend: this.htmlBackend, mode: 'panel' });
  }

  /** New settings; re-renders only when the CSP must change (wasm allowed or not). */
  updateSettings(settings: ViewSettings): void {
    this.settings = settings;
    if (mayUseWasm(settings.backend) !== mayUseWasm(this.htmlBackend)) {
      this.htmlBackend = settings.backend;
      this.render();
    } else {
      this.sendSettings();
    }
  }

  private sendSettings(): void {
    this.rpc.notify('setSettings', { ...this.settings, wasmPath: wasmPath(this.panel.webview, this.extensionUri) });
  }

  async whenReady(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new MambaScopeError('unsupported', 'Mamba Scope panel', `did not start within ${READY_TIMEOUT_MS / 1000} s (see Help > Toggle Developer Tools for the webview's console)`)), READY_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.ready, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends the model's weights unless this webview already holds them. */
  async ensureModel(model: HostModel, signal: AbortSignal, onProgress: (p: Progress) => void): Promise<void> {
    onProgress({ stage: 'starting the panel', done: 0, total: 1 });
    await this.whenReady();
    if (this.loadedModelId === model.id) return;
    const params = await model.weights(signal, onProgress);
    this.weightSource = model;
    // From here the webview may drop its old model: until the reply, it holds no known one.
    this.loadedModelId = null;
    onProgress({ stage: 'uploading weights to the panel', done: 0, total: 1 });
    const result = await this.rpc.request('loadModel', params, { signal, onProgress });
    this.loadedModelId = model.id;
    this.backend = result.backend;
    this.emitter.backend.fire(result.backend);
  }

  async run(params: RunParams, signal: AbortSignal, onProgress: (p: Progress) => void): Promise<RunSummary> {
    if (this.loadedModelId !== params.modelId) throw new InputError(params.sampleName, 'the panel holds another model: inspect again');
    this.panel.title = `Mamba Scope — ${params.sampleName}`;
    const summary = await this.rpc.request('run', params, { signal, onProgress });
    this.lastRun = { params, summary };
    this.backend = summary.backend;
    this.emitter.backend.fire(summary.backend);
    return summary;
  }

  describe(): Promise<PanelDescription> {
    return this.rpc.request('describe', null);
  }

  dispose(): void {
    if (InspectorPanel.instance !== this) return;
    InspectorPanel.instance = undefined;
    void vscode.commands.executeCommand('setContext', 'mambaScope.panelOpen', false);
    this.rpc.dispose();
    this.emitter.disposed.fire();
    for (const e of Object.values(this.emitter)) e.dispose();
    for (const d of this.disposables) d.dispose();
    this.panel.dispose();
  }
}
