/**
 * A read-only custom editor for tensor files: double-clicking a .safetensors, .npy or .npz opens
 * the viewer. Priority "default" for all three, safetensors included: VS Code's text editor can
 * only say "binary file" for them, and this viewer reads nothing but the header until a tensor is
 * shown, so model weights open as cheaply (and as safely) as dumps. "Reopen Editor With…" still
 * offers the text editor.
 */
import * as vscode from 'vscode';
import type { TensorStore } from '../engine/formats/safetensors';
import { openTensorFile } from '../engine/formats/tensorFile';
import { PROTOCOL_VERSION, Rpc, type HostApi, type HostRpc, type PanelDescription, type WebviewApi } from '../protocol';
import { saveExport } from './exports';
import { openUri } from './files';
import { dumpMessage, wireTensor } from './messages';
import { readSettings, viewSettings } from './settings';
import { wasmPath, webviewHtml, webviewOptions } from './webviewHtml';

export const DUMP_VIEW_TYPE = 'mambaScope.tensorViewer';

class TensorDocument implements vscode.CustomDocument {
  constructor(readonly uri: vscode.Uri, readonly store: TensorStore) {}
  dispose(): void {
    // The store reads by byte range with a handle per read: nothing stays open.
  }
}

export class TensorDumpEditorProvider implements vscode.CustomReadonlyEditorProvider<TensorDocument> {
  /**
   * The latest viewer of each file (by URI), for describe() in tests, with the promise of its
   * "ready": a request posted before the webview's script has registered its handlers is lost,
   * and its promise would never settle.
   */
  private readonly viewers = new Map<string, { readonly rpc: HostRpc; readonly ready: Promise<void> }>();

  constructor(private readonly extensionUri: vscode.Uri) {}

  register(): vscode.Disposable {
    return vscode.window.registerCustomEditorProvider(DUMP_VIEW_TYPE, this, {
      webviewOptions: { retainContextWhenHidden: true },
      supportsMultipleEditorsPerDocument: true,
    });
  }

  async describe(uri: vscode.Uri): Promise<PanelDescription> {
    const viewer = this.viewers.get(uri.toString());
    if (!viewer) throw new Error(`no tensor viewer is open for ${uri.toString(true)}`);
    await viewer.ready;
    return viewer.rpc.request('describe', null);
  }

  async openCustomDocument(uri: vscode.Uri): Promise<TensorDocument> {
    return new TensorDocument(uri, await openTensorFile(await openUri(uri)));
  }

  async resolveCustomEditor(document: TensorDocument, panel: vscode.WebviewPanel): Promise<void> {
    const settings = readSettings();
    panel.webview.options = webviewOptions(this.extensionUri);
    const rpc = new Rpc<HostApi, WebviewApi>('host', (m) => panel.webview.postMessage(m), (l) => panel.webview.onDidReceiveMessage(l));
    const { store } = document;
    rpc.handle('readTensor', ({ name }) => wireTensor(store, name));
    rpc.handle('saveExport', (data) => saveExport(data));
    let markReady!: () => void;
    const ready = new Promise<void>((resolve) => (markReady = resolve));
    rpc.on('ready', ({ protocolVersion }) => {
      if (protocolVersion !== PROTOCOL_VERSION) return;
      markReady();
      rpc.notify('setSettings', { ...viewSettings(settings), wasmPath: wasmPath(panel.webview, this.extensionUri) });
      void this.send(rpc, document).catch((e) => void vscode.window.showErrorMessage(`Mamba Scope: ${e instanceof Error ? e.message : String(e)}`));
    });
    const key = document.uri.toString();
    const viewer = { rpc, ready };
    this.viewers.set(key, viewer);
    panel.onDidDispose(() => {
      rpc.dispose();
      if (this.viewers.get(key) === viewer) this.viewers.delete(key);
    });
    const fileName = document.uri.path.split('/').pop() ?? 'tensors';
    panel.webview.html = webviewHtml(panel.webview, this.extensionUri, { title: fileName, backend: settings.backend, mode: 'dump' });
  }

  private async send(rpc: Rpc<HostApi, WebviewApi>, document: TensorDocument): Promise<void> {
    const { store } = document;
    await rpc.request('showDump', await dumpMessage(store, document.uri.path.split('/').pop() ?? store.name));
  }
}
