/**
 * Saving what the webview exported (PNG of a view, CSV or .npy of the selected slice). The webview
 * only produces bytes; the host owns every file write: a save dialog, then vscode.workspace.fs.
 */
import * as vscode from 'vscode';
import { InputError } from '../engine/errors';
import type { ExportData, ExportKind } from '../protocol';

const FILTERS: Record<ExportKind, Record<string, string[]>> = {
  png: { 'PNG image': ['png'] },
  csv: { 'CSV table': ['csv'] },
  npy: { 'NumPy array': ['npy'] },
};

/** The webview is our code but its names come from data (tensor names): keep a plain file name. */
export function safeFileName(suggested: string, kind: ExportKind): string {
  const base = suggested.split(/[\\/]/).pop()!.replace(/[^\w.\-]+/g, '_').replace(/^\.+/, '');
  const stem = base.replace(/\.[^.]*$/, '') || 'mamba-scope-export';
  return `${stem}.${kind}`;
}

export async function saveExport(data: ExportData, target?: vscode.Uri): Promise<{ savedTo: string | null }> {
  if (!(data.bytes instanceof ArrayBuffer) || !(data.kind in FILTERS)) throw new InputError('export', 'the panel sent no exportable bytes');
  const name = safeFileName(data.suggestedName, data.kind);
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  const uri =
    target ??
    (await vscode.window.showSaveDialog({
      title: `Mamba Scope: save ${data.kind.toUpperCase()}`,
      defaultUri: folder ? vscode.Uri.joinPath(folder, name) : undefined,
      filters: FILTERS[data.kind],
    }));
  if (!uri) return { savedTo: null };
  await vscode.workspace.fs.writeFile(uri, new Uint8Array(data.bytes));
  const shown = uri.scheme === 'file' ? uri.fsPath : uri.toString(true);
  // A .npy holds only its dtype and shape: the message names the hooks it is (a slice of).
  const hooks = Array.isArray(data.hookNames) && data.hookNames.length ? ` (TransformerLens/MambaLens: ${data.hookNames.join(', ')})` : '';
  void vscode.window.showInformationMessage(`Mamba Scope: saved ${shown}${hooks}`);
  return { savedTo: shown };
}
