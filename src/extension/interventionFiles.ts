/**
 * The host's half of the panel's interventions: the file pickers for a steer's vector (a tensor
 * file, then which of its tensors of d_model values) and a patch-state's dump, and the reading of
 * what the interventions name (messages.ts: interventionInputsMessage, the CLI's reader).
 */
import * as vscode from 'vscode';
import { InputError } from '../engine/errors';
import { openTensorFile } from '../engine/formats/tensorFile';
import { sizeOf } from '../engine/tensor';
import type { Intervention } from '../engine/interventions';
import type { LanguageModelConfig } from '../engine/model/config';
import type { InterventionInputMessage } from '../protocol';
import { openUri } from './files';
import { interventionInputsMessage } from './messages';

const FILTERS = { 'Tensor files': ['safetensors', 'npy', 'npz'] };

const openPath = async (path: string) => openTensorFile(await openUri(vscode.Uri.file(path)));

/** The file (and for a steer the tensor) the user picks; null when they cancel. */
export async function pickInterventionFile(kind: 'steer' | 'patch-state', dModel: number): Promise<{ file: string; key?: string } | null> {
  const title = kind === 'steer' ? `Mamba Scope: a steering vector (${dModel} values)` : 'Mamba Scope: the dump whose state is patched in (written with inspect --states-at)';
  const [uri] = (await vscode.window.showOpenDialog({ title, canSelectMany: false, filters: FILTERS })) ?? [];
  if (!uri) return null;
  if (kind === 'patch-state') return { file: uri.fsPath };
  const store = await openPath(uri.fsPath);
  const keys = store.names().filter((n) => sizeOf(store.info(n)!.shape) === dModel);
  if (keys.length === 0) throw new InputError(uri.fsPath, `has no tensor of ${dModel} values (d_model) to steer with`);
  const key = keys.length === 1 ? keys[0] : await vscode.window.showQuickPick(keys, { title: `Mamba Scope: which tensor of ${uri.path.split('/').pop()} steers` });
  return key ? { file: uri.fsPath, key } : null;
}

export function readInterventionFiles(interventions: readonly Intervention[], tokens: number, config: LanguageModelConfig): Promise<InterventionInputMessage[]> {
  return interventionInputsMessage(interventions, tokens, config, openPath);
}
