/** Tensor files open in the read-only viewer, by double-click (vscode.open) as well as by command. */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { PanelDescription } from '../../../src/protocol';
import { api, waitFor, wsFile } from './helpers';

async function viewerTab(uri: vscode.Uri): Promise<vscode.Tab> {
  return waitFor(`a tensor viewer tab for ${uri.path}`, () =>
    vscode.window.tabGroups.all
      .flatMap((g) => g.tabs)
      .find((t) => t.input instanceof vscode.TabInputCustom && t.input.viewType === 'mambaScope.tensorViewer' && t.input.uri.toString() === uri.toString()),
  );
}

/** Waits until the viewer of `uri` reports a drawn view with a real value range; fails with what it last reported. */
async function drawnViewer(uri: vscode.Uri): Promise<PanelDescription> {
  let last: PanelDescription | string = 'nothing';
  try {
    return await waitFor(
      `the viewer of ${uri.path} to draw`,
      async () => {
        // A describe the viewer never answers is asked again: a lost message must not outlast the deadline.
        const unanswered = new Promise<string>((r) => setTimeout(() => r('no answer to describe within 5 s'), 5_000));
        last = await Promise.race([(await api()).describeDump(uri).catch((e: Error) => e.message), unanswered]);
        return typeof last !== 'string' && Object.values(last.views).some((v) => v.drawn && v.distinctColors >= 16 && v.max > v.min) ? last : undefined;
      },
      60_000,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; it last reported ${JSON.stringify(last)}`);
  }
}

describe('Tensor viewer (custom editor)', function () {
  it('opening a mamba-dump safetensors shows it in the viewer, with real values drawn', async () => {
    const uri = wsFile('mamba1-sample1.safetensors');
    await vscode.commands.executeCommand('vscode.open', uri);
    await viewerTab(uri);
    const d = await drawnViewer(uri);
    assert.ok(d.views.heatmap?.drawn, `the Δ heatmap of a mamba dump is drawn: ${JSON.stringify(d.views)}`);
  });

  it('a .npy opens in the viewer too', async () => {
    const uri = wsFile('delta.npy');
    await vscode.commands.executeCommand('mambaScope.openDump', uri);
    await viewerTab(uri);
    await drawnViewer(uri);
  });
});
