/** Tensor files open in the read-only viewer, by double-click (vscode.open) as well as by command. */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { api, waitFor, wsFile } from './helpers';

async function viewerTab(uri: vscode.Uri): Promise<vscode.Tab> {
  return waitFor(`a tensor viewer tab for ${uri.path}`, () =>
    vscode.window.tabGroups.all
      .flatMap((g) => g.tabs)
      .find((t) => t.input instanceof vscode.TabInputCustom && t.input.viewType === 'mambaScope.tensorViewer' && t.input.uri.toString() === uri.toString()),
  );
}

describe('Tensor viewer (custom editor)', function () {
  it('opening a mamba-dump safetensors shows it in the viewer, with real values drawn', async () => {
    const uri = wsFile('mamba1-sample1.safetensors');
    await vscode.commands.executeCommand('vscode.open', uri);
    await viewerTab(uri);
    const d = await waitFor('the viewer to draw', async () => {
      const desc = await (await api()).describeDump(uri).catch(() => undefined);
      return desc && Object.values(desc.views).some((v) => v.drawn && v.distinctColors >= 16 && v.max > v.min) ? desc : undefined;
    });
    assert.ok(Object.keys(d.views).length > 0);
  });

  it('a .npy opens in the viewer too', async () => {
    const uri = wsFile('delta.npy');
    await vscode.commands.executeCommand('mambaScope.openDump', uri);
    await viewerTab(uri);
    await waitFor('the .npy viewer to draw', async () => {
      const desc = await (await api()).describeDump(uri).catch(() => undefined);
      return desc && Object.values(desc.views).some((v) => v.drawn && v.max > v.min) ? desc : undefined;
    });
  });
});
