/** Shared by the e2e tests: the extension's API, the workspace's files, polling. */
import * as vscode from 'vscode';
import type { MambaScopeApi } from '../../../src/extension/extension';

export const EXTENSION_ID = 'mamba-scope.mamba-scope';

export async function api(): Promise<MambaScopeApi> {
  const ext = vscode.extensions.getExtension<MambaScopeApi>(EXTENSION_ID);
  if (!ext) throw new Error(`${EXTENSION_ID} is not loaded (extensionDevelopmentPath?)`);
  return ext.activate();
}

/** The test workspace prepared by test/e2e/workspace.mjs. */
export function wsFile(...parts: string[]): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  if (!folder) throw new Error('the e2e suite needs the workspace prepared by test/e2e/workspace.mjs');
  return vscode.Uri.joinPath(folder, ...parts);
}

/** Polls `probe` until it returns a value other than undefined, or fails with `what`. */
export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Error kinds cross bundles: compare by the fields, not by class identity. */
export function errorKind(e: unknown): string | undefined {
  return (e as { kind?: string } | null)?.kind;
}
