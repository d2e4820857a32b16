/**
 * "Mamba Scope: Compare Dumps…": pick a reference dump (a) and a dump to check (b), compare them
 * on the host (comparison.ts) and show the result in the panel's Numerics view, with a's own
 * tensors in the other views. a's tensors go with the message when they fit, else the panel
 * reads them one by one.
 */
import * as vscode from 'vscode';
import { openTensorFile } from '../engine/formats/tensorFile';
import { comparisonParams } from './comparison';
import { openUri } from './files';
import { dumpMessage, wireTensor } from './messages';
import type { InspectorPanel } from './panel';

const FILTERS = { 'Tensor files': ['safetensors', 'npy', 'npz'] };

/** `a` and `b` are asked for unless given (the command's arguments: other extensions, tests). */
export async function compareDumps(openPanel: () => InspectorPanel, givenA?: vscode.Uri, givenB?: vscode.Uri): Promise<void> {
  const [a] = givenA ? [givenA] : ((await vscode.window.showOpenDialog({ title: 'Compare Dumps: the reference (a), e.g. the float64 or fp32 run', canSelectMany: false, filters: FILTERS })) ?? []);
  if (!a) return;
  const [b] = givenB ? [givenB] : ((await vscode.window.showOpenDialog({ title: `Compare Dumps: the run to check against ${name(a)} (b)`, canSelectMany: false, filters: FILTERS })) ?? []);
  if (!b) return;
  await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Mamba Scope: comparing ${name(a)} with ${name(b)}` }, async () => {
    const [storeA, storeB] = await Promise.all([openTensorFile(await openUri(a)), openTensorFile(await openUri(b))]);
    const params = await comparisonParams(storeA, storeB, await dumpMessage(storeA, name(a)), name(b));
    const panel = openPanel();
    await panel.whenReady();
    panel.rpc.handle('readTensor', ({ name: tensor }) => wireTensor(storeA, tensor));
    await panel.rpc.request('showComparison', params);
  });
}

function name(uri: vscode.Uri): string {
  return uri.path.split('/').pop() ?? uri.toString();
}
