/**
 * The HTML shell of every Mamba Scope webview (the inspector panel and the tensor-dump editor).
 * Content-Security-Policy: nothing by default; scripts only with this page's nonce (no
 * 'unsafe-eval'); 'wasm-unsafe-eval' only when the wasm backend may run (backend wasm or auto,
 * whose fallback chain ends in wasm); connect-src only the extension's own files (tfjs-wasm fetches
 * its .wasm); workers only from blob: URLs (the attention worker's code is in the bundle). The
 * webview reads everything it needs from the panel's messages, never from files, so
 * localResourceRoots are only the folders with the bundle, the styles and the .wasm binaries.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { BackendPreference } from '../protocol';

/** Folders of the extension a webview may load from: the bundle (+ dist/wasm) and media/. */
export function localResourceRoots(extensionUri: vscode.Uri): vscode.Uri[] {
  return [vscode.Uri.joinPath(extensionUri, 'dist'), vscode.Uri.joinPath(extensionUri, 'media')];
}

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return { enableScripts: true, localResourceRoots: localResourceRoots(extensionUri) };
}

/** ViewSettings.wasmPath: the webview URL of dist/wasm/ (setWasmPaths wants the trailing slash). */
export function wasmPath(webview: vscode.Webview, extensionUri: vscode.Uri): string {
  return `${webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'wasm'))}/`;
}

/** Whether the wasm backend may be chosen, and so needs 'wasm-unsafe-eval'. */
export function mayUseWasm(backend: BackendPreference): boolean {
  return backend === 'wasm' || backend === 'auto';
}

export function webviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, opts: { title: string; backend: BackendPreference; mode: 'panel' | 'dump' }): string {
  const nonce = randomBytes(16).toString('base64');
  const asset = (...p: string[]) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, ...p));
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data: blob:`,
    // Lit/vscode-elements and the views set element styles; no style can run code.
    `style-src ${webview.cspSource} 'unsafe-inline'`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'${mayUseWasm(opts.backend) ? " 'wasm-unsafe-eval'" : ''}`,
    `connect-src ${webview.cspSource}`,
    // The attention worker, started from our own bundled code (webview/analysis/attentionClient.ts).
    'worker-src blob:',
  ].join('; ');
  // The webview bundle may or may not emit a stylesheet; link only what the build produced.
  const styles = ['dist/webview.css', 'media/webview.css']
    .filter((rel) => fs.existsSync(vscode.Uri.joinPath(extensionUri, rel).fsPath))
    .map((rel) => `<link rel="stylesheet" href="${asset(...rel.split('/'))}">`)
    .join('\n    ');
  return `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <meta http-equiv="Content-Security-Policy" content="${csp}">
    <meta name="viewport" content="width=device-width, initial-scale=1.0">
    ${styles}
    <title>${escapeHtml(opts.title)}</title>
  </head>
  <body data-mode="${opts.mode}">
    <script nonce="${nonce}" src="${asset('dist', 'webview.js')}"></script>
  </body>
</html>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
