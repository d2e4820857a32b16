/**
 * Inspect in a real VS Code: the panel's numbers are checked against the engine's float64
 * reference forward run here in the extension host, its pixels through its own description,
 * the editor's decorations and the linked selection through the extension's API.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { loadModelFolder } from '../../../src/engine/model/load';
import { referenceForward } from '../../../src/engine/reference/forward';
import { normalizedError } from '../../../src/engine/tensor';
import { MambaTokenizer } from '../../../src/engine/tokenizer';
import { NodeFolderStore } from '../../../src/node/files';
import { BACKENDS, fromTensorMessage, TOKEN_METRICS, type PanelDescription, type TokenMetric } from '../../../src/protocol';
import type { InspectionResult } from '../../../src/extension/inspect';
import { api, errorKind, EXTENSION_ID, waitFor, wsFile } from './helpers';
import { scanOf } from '../../../src/engine/layers/kind';

/** The protocol's per-token metrics computed straight from their definitions on float64 internals. */
async function referenceMetrics(modelDir: string, ids: Int32Array): Promise<Record<TokenMetric, Float64Array>[]> {
  const model = await loadModelFolder(new NodeFolderStore(modelDir), 'float64');
  if (model.config.arch !== 'mamba1') throw new Error('the bundled model is Mamba-1');
  const { layers } = referenceForward(model, ids);
  const { dInner: D, dState: N } = model.config;
  return layers.map(({ layer, tensors }) => {
    const delta = tensors.delta!.data, z = tensors.z!.data, u = tensors.u!.data, B = tensors.B!.data;
    const A = scanOf(model.layers[layer]).aLog.data.map((a) => -Math.exp(a));
    const L = ids.length;
    const out = Object.fromEntries(TOKEN_METRICS.map((m) => [m, new Float64Array(L)])) as Record<TokenMetric, Float64Array>;
    for (let t = 0; t < L; t++) {
      let bNorm = 0;
      for (let n = 0; n < N; n++) bNorm += B[t * N + n] ** 2;
      bNorm = Math.sqrt(bNorm);
      for (let d = 0; d < D; d++) {
        const dt = delta[t * D + d], zz = z[t * D + d];
        out.delta[t] += dt / D;
        out.gate[t] += zz / (1 + Math.exp(-zz)) / D;
        for (let n = 0; n < N; n++) out.forget[t] += Math.exp(dt * A[d * N + n]) / (D * N);
        out.write[t] += (Math.abs(dt * u[t * D + d]) * bNorm) / D;
      }
    }
    return out;
  });
}

/** Fields in one CSV line, with RFC 4180 quoting (token texts contain commas). */
function csvFieldCount(line: string): number {
  let fields = 1;
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) fields++;
  }
  return fields;
}

function changedViews(a: PanelDescription, b: PanelDescription): string[] {
  return Object.keys(b.views).filter((v) => JSON.stringify(a.views[v]) !== JSON.stringify(b.views[v]));
}

describe('Inspect File on the bundled model (real VS Code)', function () {
  let result: InspectionResult;
  let text: string;
  const sample = () => wsFile('demo0.py');

  before(async function () {
    const a = await api();
    const t0 = Date.now();
    result = await a.inspect(sample());
    text = (await vscode.workspace.openTextDocument(sample())).getText();
    console.log(`      first inspection (weights upload + forward): ${Date.now() - t0} ms, forward ${result.summary.forwardMs.toFixed(0)} ms on ${result.summary.backend.backend} (${result.summary.backend.reason})`);
  });

  it('tokenizes the whole file with the model tokenizer and names the backend that ran', async () => {
    const modelDir = vscode.Uri.joinPath(vscode.extensions.getExtension(EXTENSION_ID)!.extensionUri, 'assets', 'mamba1-demo');
    const tok = MambaTokenizer.fromJson(new TextDecoder().decode(await vscode.workspace.fs.readFile(vscode.Uri.joinPath(modelDir, 'tokenizer.json'))), 'tokenizer.json');
    assert.equal(result.tokens, tok.encode(text).ids.length);
    assert.ok(result.tokens > 100, `demo0.py has ${result.tokens} tokens`);
    assert.ok((BACKENDS as readonly string[]).includes(result.summary.backend.backend));
    assert.deepEqual([...result.summary.layers], [0, 1, 2, 3]);
  });

  it("the panel's per-token metrics equal the float64 reference forward's, every layer", async () => {
    const modelDir = vscode.Uri.joinPath(vscode.extensions.getExtension(EXTENSION_ID)!.extensionUri, 'assets', 'mamba1-demo').fsPath;
    const tok = MambaTokenizer.fromJson(new TextDecoder().decode(await vscode.workspace.fs.readFile(vscode.Uri.file(`${modelDir}/tokenizer.json`))), 'tokenizer.json');
    const ref = await referenceMetrics(modelDir, tok.encode(text).ids);
    const L = result.tokens;
    for (const m of TOKEN_METRICS) {
      const msg = result.summary.perToken[m];
      assert.ok(msg, `the panel sent per-token ${m}`);
      const got = fromTensorMessage(msg, m).data;
      assert.deepEqual([...msg.shape], [4, L], `${m} shape`);
      for (let layer = 0; layer < 4; layer++) {
        const err = normalizedError(got.subarray(layer * L, (layer + 1) * L), ref[layer][m]);
        assert.ok(err < 2e-3, `${m} layer ${layer}: normalized error ${err.toExponential(2)} vs the float64 reference`);
      }
    }
  });

  it('the panel drew real values: canvases with many colours and a non-degenerate range', async () => {
    const d = await (await api()).describePanel();
    assert.equal(d.runId, result.runId);
    // The token strip and the Δ heatmap are always on screen; the other views draw when their tab
    // is shown or a token is selected (next test).
    for (const id of ['tokens', 'heatmap']) {
      const v = d.views[id];
      assert.ok(v?.drawn && v.distinctColors >= 16 && v.max > v.min, `${id}: ${JSON.stringify(v)}`);
    }
    const L = result.tokens;
    const delta = fromTensorMessage(result.summary.perToken.delta!, 'delta').data.subarray(0, L);
    const [lo, hi] = [Math.min(...delta), Math.max(...delta)];
    const strip = d.views.tokens;
    assert.ok(Math.abs(strip.min - lo) <= 1e-6 * hi && Math.abs(strip.max - hi) <= 1e-6 * hi, `token strip range [${strip.min}, ${strip.max}] = per-token Δ range [${lo}, ${hi}] of layer 0`);
  });

  it('selecting a token from the editor selects it in the panel and updates the linked views', async () => {
    const a = await api();
    const before = await a.describePanel();
    const token = Math.floor(result.tokens / 2);
    a.selectToken(token);
    await waitFor('the panel to report the selection', () => (a.lastSelection()?.token === token ? true : undefined));
    const after = await waitFor('linked views to redraw', async () => {
      const d = await a.describePanel();
      return d.selection?.token === token && changedViews(before, d).length >= 2 ? d : undefined;
    });
    console.log(`      views redrawn for token ${token}: ${changedViews(before, after).join(', ')}`);
  });

  it('tints the inspected tokens in the editor over the whole 16-level range', async () => {
    const stats = (await api()).decorationStats();
    assert.ok(stats.decorated >= result.tokens * 0.9, `${stats.decorated} of ${result.tokens} tokens decorated`);
    assert.ok(stats.levels[0] > 0 && stats.levels[15] > 0, 'both ends of the scale are used');
    assert.ok(stats.levels.filter((n) => n > 0).length >= 8, `levels used: ${stats.levels}`);
  });

  it('decorations follow an edit before the sample and are cleared by an edit inside it', async () => {
    const a = await api();
    const editor = await vscode.window.showTextDocument(sample(), { preview: false });
    const decorated = a.decorationStats().decorated;
    try {
      await editor.edit((e) => e.insert(new vscode.Position(0, 0), '# x\n'));
      assert.equal(a.decorationStats().decorated, decorated, 'an insertion before the sample keeps them');
      await editor.edit((e) => e.insert(new vscode.Position(3, 2), 'zz'));
      assert.equal(a.decorationStats().decorated, 0, 'an edit inside the inspected text clears them');
    } finally {
      await vscode.commands.executeCommand('workbench.action.files.revert');
    }
    await a.inspect(sample());
  });

  it('exports the view as PNG and the selected slice as .npy and .csv, written by the host', async () => {
    const a = await api();
    const out = wsFile('exports');
    await vscode.workspace.fs.createDirectory(out);
    const magic: Record<'png' | 'npy' | 'csv', (b: Uint8Array) => boolean> = {
      png: (b) => b[0] === 0x89 && String.fromCharCode(...b.subarray(1, 4)) === 'PNG',
      npy: (b) => b[0] === 0x93 && String.fromCharCode(...b.subarray(1, 6)) === 'NUMPY',
      csv: (b) => {
        const rows = new TextDecoder().decode(b).trimEnd().split('\n');
        const fields = csvFieldCount(rows[0]);
        return rows.length > 2 && fields > 1 && rows.slice(0, 50).every((r) => csvFieldCount(r) === fields);
      },
    };
    for (const kind of ['png', 'npy', 'csv'] as const) {
      const target = vscode.Uri.joinPath(out, `view.${kind}`);
      const saved = await a.exportView(kind, target);
      assert.ok(saved, `${kind} export was saved`);
      const bytes = await vscode.workspace.fs.readFile(target);
      assert.ok(bytes.length > 16 && magic[kind](bytes), `${kind}: ${bytes.length} bytes starting ${[...bytes.subarray(0, 8)]}`);
    }
  });
});

// Never skipped: both runners start VS Code with --enable-unsafe-webgpu (driver.mjs for code-server,
// test-electron.mjs), so a missing adapter is a failure, on SwiftShader here and on a GPU elsewhere.
describe('WebGPU backend', function () {
  it('with mambaScope.backend = webgpu a selection runs on WebGPU and agrees with the other backend', async function () {
    const a = await api();
    const cfg = () => vscode.workspace.getConfiguration('mambaScope');
    const previous = cfg().inspect<string>('backend')?.globalValue;
    const range = new vscode.Range(0, 0, 6, 0);
    const base = await a.inspect(wsFile('demo1.py'), range);
    await cfg().update('backend', 'webgpu', vscode.ConfigurationTarget.Global);
    try {
      const gpu = await a.inspect(wsFile('demo1.py'), range);
      const b = gpu.summary.backend;
      console.log(`      ${gpu.tokens} tokens: ${b.backend} ${JSON.stringify(b.adapter ?? {})} forward ${gpu.summary.forwardMs.toFixed(0)} ms; ${base.summary.backend.backend} ${base.summary.forwardMs.toFixed(0)} ms`);
      assert.equal(b.backend, 'webgpu', b.reason);
      for (const m of ['delta', 'forget'] as const) {
        const err = normalizedError(fromTensorMessage(gpu.summary.perToken[m]!, m).data, fromTensorMessage(base.summary.perToken[m]!, m).data);
        assert.ok(err < 1e-3, `${m}: WebGPU vs ${base.summary.backend.backend} normalized error ${err.toExponential(2)}`);
      }
    } finally {
      await cfg().update('backend', previous, vscode.ConfigurationTarget.Global);
    }
  });
});

describe('Inspect: failures and cancellation', function () {
  it('an empty file is refused with one line naming it', async () => {
    const a = await api();
    await assert.rejects(a.inspect(wsFile('empty.py')), (e: unknown) => errorKind(e) === 'bad-input' && /empty\.py: is empty: nothing to inspect$/.test((e as Error).message));
  });

  it('a second inspection cancels the one in flight; the panel shows the second', async () => {
    const a = await api();
    const first = a.inspect(wsFile('demo1.py'));
    const second = a.inspect(wsFile('demo2.py'));
    await assert.rejects(first, (e: unknown) => errorKind(e) === 'cancelled');
    const r = await second;
    assert.equal((await a.describePanel()).runId, r.runId);
  });

  it('mambaScope.maxTokens cuts a long sample to its first tokens', async () => {
    const a = await api();
    const cfg = vscode.workspace.getConfiguration('mambaScope');
    await cfg.update('maxTokens', 50, vscode.ConfigurationTarget.Global);
    try {
      const r = await a.inspect(wsFile('demo0.py'));
      assert.equal(r.tokens, 50);
      assert.ok(r.totalTokens > 50);
      assert.deepEqual([...r.summary.perToken.delta!.shape], [4, 50]);
    } finally {
      await cfg.update('maxTokens', undefined, vscode.ConfigurationTarget.Global);
    }
  });

  it('mambaScope.runMemoryLimitMB: a run keeps the internals of the layers that fit, spread over the model, and says so', async () => {
    const a = await api();
    const shown = await a.inspect(wsFile('demo3.py'));
    // About 2000 tokens: each layer's z, u, Δ, B and C keep ~6 kB per token, ~12.5 MB a layer.
    const long = wsFile('long-sample.py');
    const text = new TextDecoder().decode(await vscode.workspace.fs.readFile(wsFile('demo0.py')));
    await vscode.workspace.fs.writeFile(long, new TextEncoder().encode(text.repeat(4)));
    const cfg = vscode.workspace.getConfiguration('mambaScope');
    await cfg.update('runMemoryLimitMB', 30, vscode.ConfigurationTarget.Global);
    try {
      const part = await a.inspect(long);
      assert.deepEqual(part.summary.layers, [0, 3]);
      assert.match(part.summary.note ?? '', /^kept the internals of 2 of 4 layers \(0, 3\): all of them would take \d+ MB, over mambaScope\.runMemoryLimitMB \(30 MB\)$/);
      // The setting's minimum, 16 MB, holds one layer: the first (a run no layer fits is refused: test/webview/compute.test.ts).
      await cfg.update('runMemoryLimitMB', 16, vscode.ConfigurationTarget.Global);
      const one = await a.inspect(long);
      assert.deepEqual(one.summary.layers, [0]);
      const panel = await a.describePanel();
      assert.equal(panel.runId, one.runId);
      assert.notEqual(one.runId, shown.runId);
    } finally {
      await cfg.update('runMemoryLimitMB', undefined, vscode.ConfigurationTarget.Global);
      await vscode.workspace.fs.delete(long);
    }
  });

  it('Inspect Selection inspects only the selected lines', async () => {
    const a = await api();
    const r = await a.inspect(wsFile('demo3.py'), new vscode.Range(2, 0, 8, 0));
    assert.match(r.sampleName, /^demo3\.py:3-9$/);
    const whole = await a.inspect(wsFile('demo3.py'));
    assert.ok(r.tokens < whole.tokens / 2, `${r.tokens} selected vs ${whole.tokens} in the file`);
  });
});

describe('a hybrid model (Jamba) in real VS Code', function () {
  it('runs on the panel\'s tfjs backend: a Mamba layer draws its Δ heatmap, the attention layer its own attention', async () => {
    const a = await api();
    const ref = await vscode.commands.executeCommand<{ label: string } | undefined>('mambaScope.openModel', wsFile('jamba'));
    assert.equal(ref?.label, 'jamba');
    try {
      const r = await a.inspect(wsFile('demo0.py'));
      assert.deepEqual([...r.summary.layers], [0, 1, 2, 3]);
      a.selectToken(3, 0);
      const mamba = await waitFor('the Δ heatmap of Mamba layer 0', async () => {
        const d = await a.describePanel();
        return d.selection?.layer === 0 && d.views.heatmap?.drawn ? d : undefined;
      });
      assert.ok(mamba.views.heatmap.distinctColors > 8);
      // Layer 2 is attention: the main tab turns to the attention view, which draws the layer's own pattern (row sums 1, so max ≤ 1).
      a.selectToken(3, 2);
      const attention = await waitFor('the attention of layer 2', async () => {
        const d = await a.describePanel();
        return d.selection?.layer === 2 && d.views.attention?.drawn ? d : undefined;
      });
      assert.ok(attention.views.attention.max <= 1 + 1e-6 && attention.views.attention.max > 0.1, `attention max ${attention.views.attention.max}`);
    } finally {
      const bundled = vscode.Uri.joinPath(vscode.extensions.getExtension(EXTENSION_ID)!.extensionUri, 'assets', 'mamba1-demo');
      await vscode.commands.executeCommand('mambaScope.openModel', bundled);
    }
  });
});

describe('Open Model', function () {
  it('switches to another model folder: weights go to the panel again and the run has its layers', async () => {
    const a = await api();
    const ref = await vscode.commands.executeCommand<{ label: string } | undefined>('mambaScope.openModel', wsFile('mamba1-tiny'));
    assert.equal(ref?.label, 'mamba1-tiny');
    try {
      const r = await a.inspect(wsFile('demo0.py'));
      assert.deepEqual([...r.summary.layers], [0, 1]);
    } finally {
      const bundled = vscode.Uri.joinPath(vscode.extensions.getExtension(EXTENSION_ID)!.extensionUri, 'assets', 'mamba1-demo');
      await vscode.commands.executeCommand('mambaScope.openModel', bundled);
    }
  });
});
