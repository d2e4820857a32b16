/**
 * A long sample in a real VS Code (issue 13): the long fixture's 32,768-token text inspected with
 * mamba1-tiny on the panel's backend (wasm in the e2e run). The overview is drawn, and its loss
 * over every position (exported as .npy) is transformers' float64 loss from the golden file; the
 * editor's cursor on token 5000 moves the window there, and the heatmap's layer-1 Δ over the window
 * (exported) is the float64 reference's at full resolution, computed here in the extension host.
 */
import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { openTensorFile } from '../../../src/engine/formats/tensorFile';
import type { LanguageModel } from '../../../src/engine/model/graph';
import { loadModelFolder } from '../../../src/engine/model/load';
import { referenceForward } from '../../../src/engine/reference/forward';
import { normalizedError } from '../../../src/engine/tensor';
import { NodeFileSource, NodeFolderStore } from '../../../src/node/files';
import { api, EXTENSION_ID, waitFor, wsFile } from './helpers';

const TOKENS = 32_768;
const SELECTED = 5000;
/** The window of 2048 tokens centred on the selected token. */
const WINDOW = [SELECTED - 1024, SELECTED + 1024] as const;

async function readNpy(uri: vscode.Uri): Promise<{ shape: readonly number[]; data: Float32Array | Float64Array }> {
  const store = await openTensorFile(await NodeFileSource.open(uri.fsPath));
  return store.readFloat(store.names()[0], 'float64');
}

describe('A long sample in real VS Code (32k tokens, mamba1-tiny)', function () {
  this.timeout(600_000);

  it('draws the overview of all 32,768 tokens (its loss is transformers\' float64 loss) and shows a window moved to by the editor at full resolution', async () => {
    const a = await api();
    const root = vscode.extensions.getExtension(EXTENSION_ID)!.extensionUri.fsPath;
    const cfg = vscode.workspace.getConfiguration('mambaScope');
    const ref = await vscode.commands.executeCommand<{ label: string } | undefined>('mambaScope.openModel', wsFile('mamba1-tiny'));
    assert.equal(ref?.label, 'mamba1-tiny');
    await cfg.update('maxTokens', TOKENS, vscode.ConfigurationTarget.Global);
    const out = vscode.Uri.file(join(root, 'test-results', 'e2e'));
    try {
      const started = Date.now();
      const r = await a.inspect(wsFile('text-32k.py'));
      assert.equal(r.tokens, TOKENS);
      assert.deepEqual(r.summary.window, [0, 2048], 'the decorations cover the first window');
      const overview = await waitFor('the overview and the first window', async () => {
        const d = await a.describePanel();
        return d.long?.fullResolution && d.views.overview?.drawn ? d : undefined;
      });
      console.log(`    32,768 tokens inspected and the overview drawn in ${((Date.now() - started) / 1000).toFixed(1)} s on ${overview.backend}`);
      assert.equal(overview.long!.tokens, TOKENS);
      assert.ok(overview.views.overview.distinctColors > 10, `the tiles drew ${overview.views.overview.distinctColors} colours`);
      assert.ok(a.decorationStats().decorated > 1000 && a.decorationStats().decorated <= 2048, `${a.decorationStats().decorated} tokens decorated`);

      // The loss over every position against transformers' float64 run of the same text.
      const target = vscode.Uri.joinPath(out, 'long-overview.npy');
      assert.ok(await a.exportView('npy', target, 'overview'));
      const series = await readNpy(target);
      assert.deepEqual([...series.shape], [TOKENS, 4]);
      const golden = await openTensorFile(await NodeFileSource.open(join(root, 'test', 'fixtures', 'long', 'golden-32k.safetensors')));
      const nll = (await golden.readFloat('nll_f64', 'float64')).data;
      const loss = Float64Array.from({ length: TOKENS - 1 }, (_, t) => series.data[t * 4]);
      const e = normalizedError(loss, nll);
      assert.ok(e <= 1e-4, `loss over 32k positions: normalized error ${e}`);

      // The editor's cursor far outside the first window: the window moves there, recomputed from its checkpoint.
      a.selectToken(SELECTED, 1);
      let last: Awaited<ReturnType<typeof a.describePanel>> | undefined;
      const moved = await waitFor('the window around the selected token at full resolution', async () => {
        const d = (last = await a.describePanel());
        return d.long?.fullResolution && d.long.window[0] === WINDOW[0] && d.selection?.layer === 1 && d.views.heatmap?.drawn ? d : undefined;
      }, 120_000).catch((e: Error) => {
        throw new Error(`${e.message}; the panel last: ${JSON.stringify({ long: last?.long, selection: last?.selection, heatmap: last?.views.heatmap })}`);
      });
      assert.equal(moved.selection?.token, SELECTED);
      const heatmap = vscode.Uri.joinPath(out, 'long-window-delta.npy');
      assert.ok(await a.exportView('npy', heatmap, 'heatmap'));
      const got = await readNpy(heatmap);
      const model = (await loadModelFolder(new NodeFolderStore(wsFile('mamba1-tiny').fsPath), 'float64')) as LanguageModel<'float64'>;
      const ids = (await golden.readNative('input_ids')).data as Int32Array;
      const want = referenceForward(model, ids.subarray(0, WINDOW[1]), { layers: [1], keep: ['delta'] }).layers[0].tensors.delta!;
      const D = want.shape[1];
      assert.deepEqual([...got.shape], [2048, D]);
      const err = normalizedError(got.data, want.data.subarray(WINDOW[0] * D, WINDOW[1] * D));
      assert.ok(err <= 1e-4, `layer 1 Δ over tokens ${WINDOW[0]}–${WINDOW[1] - 1}: normalized error ${err}`);
    } finally {
      await cfg.update('maxTokens', undefined, vscode.ConfigurationTarget.Global);
      const bundled = vscode.Uri.joinPath(vscode.extensions.getExtension(EXTENSION_ID)!.extensionUri, 'assets', 'mamba1-demo');
      await vscode.commands.executeCommand('mambaScope.openModel', bundled);
    }
  });
});
