/**
 * A hybrid model in the panel (Jamba: Mamba-1 layers with an MLP or MoE, an attention layer):
 * tfjs runs it on wasm; the layer selector and the layer table name each layer's kind; the Mamba
 * layers' views draw; the attention layer says it has no selective scan instead of failing, and
 * its attention tab shows its own attention (the reference's, averaged over heads); the paths tab
 * shows each path's output norm and the MoE routing; the next-token view covers the model.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TOKEN_METRICS, type ViewSettings } from '../../src/protocol';
import { layerLabel, layerOps, mambaOp } from '../../src/engine/layers/hybrid/config';
import type { HybridConfig } from '../../src/engine/model/config';
import { loadModelParams, runParams } from './messages';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { NodeFolderStore } from '../../src/node/files';
import { Panel } from './panel';
import { ROOT } from './server';

const JAMBA = join(ROOT, 'test', 'fixtures', 'families', 'jamba');
const TEXT = 'def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n';

describe('a hybrid model (Jamba) in the panel', function () {
  let panel: Panel;

  before(async () => {
    panel = await Panel.open({ withoutWebGpu: true });
  });

  after(async () => {
    await panel?.close();
  });

  it('runs on wasm, names each layer by its kind, draws the Mamba layers and says the attention layer has no scan', async () => {
    const settings: ViewSettings = { backend: 'wasm', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05, wasmPath: panel.server.wasmPath };
    await panel.notify('setSettings', settings);
    const { params, tokenizer } = await loadModelParams(JAMBA, 'jamba');
    await panel.request('loadModel', params);
    const summary = await panel.request('run', runParams('jamba-run', 'jamba', TEXT, tokenizer, { backend: 'wasm', memoryLimitMB: 1200 }));
    assert.deepEqual(summary.layers, [0, 1, 2, 3]);
    assert.equal(summary.next!.ids.values.length, tokenizer.encode(TEXT).ids.length);
    await panel.waitForView('heatmap');
    const options = await panel.page.locator('vscode-option').allTextContents();
    assert.deepEqual(options.filter((o) => /^\d · /.test(o)), ['0 · Mamba-1 + MLP', '1 · Mamba-1 + MoE', '2 · attention + MLP', '3 · Mamba-1 + MoE']);
    assert.ok((await panel.request('describe', null)).views.heatmap.drawn, 'layer 0 heatmap');

    // Selecting the attention layer turns the main tab to the attention view, which draws the layer's own attention.
    await panel.notify('selectToken', { runId: 'jamba-run', token: 5, layer: 2 });
    await panel.waitForView('attention');
    assert.match(await panel.page.locator('.view-attention .view-title').textContent() ?? '', /^Attention · layer 2 · mean over heads · token \(row\) × attended token$/);
    const ids = tokenizer.encode(TEXT).ids;
    const ref = referenceForward(await loadModelFolder(new NodeFolderStore(JAMBA), 'float64'), ids, { attentionPattern: true, layers: [2] });
    const p = ref.layers[0].tensors.attn_pattern!;
    const [L, heads] = p.shape;
    const mean = Array.from({ length: L * L }, (_, i) => {
      const [t, s] = [Math.floor(i / L), i % L];
      let sum = 0;
      for (let h = 0; h < heads; h++) sum += p.data[t * heads * L + h * L + s];
      return sum / heads;
    });
    const shown = (await panel.request('describe', null)).views.attention;
    assert.ok(shown.drawn && Math.abs(shown.max! - Math.max(...mean)) < 1e-5 && Math.abs(shown.min! - Math.min(...mean)) < 1e-6, `shown ${shown.min}…${shown.max}, expected ${Math.min(...mean)}…${Math.max(...mean)}`);
    // Layer 1 (Mamba-1 + MoE): each path's output norm per token, and the experts each token went to.
    await panel.notify('selectToken', { runId: 'jamba-run', token: 5, layer: 1 });
    await panel.page.locator('vscode-tab-header[data-view="paths"]').click();
    await panel.waitForView('paths');
    assert.match(await panel.page.locator('.view-paths .view-title').first().textContent() ?? '', /^Paths · layer 1 \(Mamba-1 \+ MoE\)/);
    assert.match(await panel.page.locator('.view-paths .view-title').nth(1).textContent() ?? '', /^Experts each token was routed to · weight \(top 2 of 4\)$/);
    const r1 = referenceForward(await loadModelFolder(new NodeFolderStore(JAMBA), 'float64'), ids, { layers: [1] }).layers[0].tensors;
    const rowNorms = (t: { shape: readonly number[]; data: Float64Array }) => Array.from({ length: t.shape[0] }, (_, i) => Math.hypot(...t.data.subarray(i * t.shape[1], (i + 1) * t.shape[1])));
    const norms = [...rowNorms(r1.ssm_out!), ...rowNorms(r1.mlp_out!)];
    const paths = (await panel.request('describe', null)).views.paths;
    assert.ok(paths.drawn && Math.abs(paths.max! - Math.max(...norms)) <= 1e-5 * Math.max(...norms) && Math.abs(paths.min! - Math.min(...norms)) <= 1e-5 * Math.max(...norms), `shown ${paths.min}…${paths.max}, expected ${Math.min(...norms)}…${Math.max(...norms)}`);
    // Back on the Δ heatmap, the attention layer says it has no scan.
    await panel.notify('selectToken', { runId: 'jamba-run', token: 5, layer: 2 });
    await panel.page.locator('vscode-tab-header[data-view="heatmap"]').click();
    await panel.page.waitForFunction(() => /has no selective scan/.test(document.querySelector('.view-heatmap')?.textContent ?? ''));
    assert.match(await panel.page.locator('.view-heatmap').textContent() ?? '', /layer 2 \(attention \+ MLP\) has no selective scan: Δ, the gates and the state exist in its Mamba layers/);
    await panel.page.locator('vscode-tab-header[data-view="layers"]').click();
    await panel.waitForView('layers');
    const row = await panel.page.locator('.layer-table tr[data-layer="2"]').textContent();
    assert.match(row ?? '', /^2attention \+ MLPno selective scan/);
    assert.deepEqual(panel.errors, []);
  });
});

/** Every family on the native engine (SwiftShader): each view of a Mamba layer, an attention layer's own pattern, an MoE layer's routing, the paths, the layer table and the next-token view. */
describe('every hybrid family in the panel, on the native WebGPU engine', function () {
  let panel: Panel;
  const FAMILIES = ['jamba', 'bamba', 'granitemoehybrid', 'nemotron_h', 'zamba2', 'falcon_h1'];

  before(async () => {
    panel = await Panel.open();
  });

  after(async () => {
    await panel?.close();
  });

  /** Drawn, and a canvas view in more than one colour (the next-token view and the token strip are text). */
  const drawn = async (view: string, canvas = true) => {
    await panel.waitForView(view);
    const d = (await panel.request('describe', null)).views[view];
    return d.drawn && (!canvas || d.distinctColors > 1);
  };

  for (const family of FAMILIES) {
    it(`${family}: every view draws`, async () => {
      const settings: ViewSettings = { backend: 'webgpu', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };
      await panel.notify('setSettings', settings);
      const dir = join(ROOT, 'test', 'fixtures', 'families', family);
      const { params, tokenizer } = await loadModelParams(dir, family, undefined, JAMBA);
      const config = params.config as HybridConfig;
      await panel.request('loadModel', params);
      const summary = await panel.request('run', runParams(`${family}-run`, family, TEXT, tokenizer, { backend: 'webgpu', memoryLimitMB: 1200 }));
      assert.equal((await panel.request('describe', null)).engine, 'webgpu-native');
      assert.deepEqual(summary.layers, config.layers.map((_, i) => i));
      const runId = `${family}-run`;
      const problems: string[] = [];
      const expect = (ok: boolean, what: string) => ok || problems.push(what);

      // A Mamba layer: the Δ heatmap under every metric, the gates, the implicit attention, the state, the paths.
      const mamba = config.layers.findIndex((l) => mambaOp(l));
      await panel.notify('selectToken', { runId, token: 5, layer: mamba });
      for (const metric of TOKEN_METRICS) {
        await panel.notify('setSettings', { ...settings, metric });
        await panel.page.locator('vscode-tab-header[data-view="heatmap"]').click();
        expect(await drawn('heatmap'), `layer ${mamba} heatmap (${metric})`);
      }
      await panel.notify('setSettings', settings);
      for (const view of ['gates', 'attention', 'paths']) {
        await panel.page.locator(`vscode-tab-header[data-view="${view}"]`).click();
        expect(await drawn(view), `layer ${mamba} ${view}`);
      }
      expect(await drawn('state'), `layer ${mamba} state`);
      // The token strip tints each token by the metric of the selected layer (a layer without a scan leaves it untinted).
      expect(await drawn('tokens', false), `layer ${mamba} token strip`);
      // An attention layer: its own pattern, averaged over heads.
      const attention = config.layers.findIndex((l) => l.branches.some((b) => b.ops.some((op) => op.kind === 'attention')));
      if (attention >= 0) {
        await panel.notify('selectToken', { runId, token: 5, layer: attention });
        await panel.page.locator('vscode-tab-header[data-view="attention"]').click();
        await panel.page.waitForFunction((l) => new RegExp(`^Attention · layer ${l} · mean over heads`).test(document.querySelector('.view-attention .view-title')?.textContent ?? ''), attention);
        expect(await drawn('attention'), `layer ${attention} attention pattern`);
      }
      // An MoE layer: the experts each token went to, under the paths.
      const moe = config.layers.findIndex((l) => layerOps(l).some((op) => op.kind === 'moe'));
      if (moe >= 0) {
        await panel.notify('selectToken', { runId, token: 5, layer: moe });
        await panel.page.locator('vscode-tab-header[data-view="paths"]').click();
        expect(await drawn('paths'), `layer ${moe} paths`);
        expect(/^Experts each token was routed to/.test(await panel.page.locator('.view-paths .view-title').nth(1).textContent() ?? ''), `layer ${moe} routing`);
      }
      await panel.page.locator('vscode-tab-header[data-view="layers"]').click();
      await panel.waitForView('layers');
      for (const [i, l] of config.layers.entries()) {
        expect((await panel.page.locator(`.layer-table tr[data-layer="${i}"]`).textContent() ?? '').startsWith(`${i}${layerLabel(l)}`), `layer table row ${i}`);
      }
      expect(await drawn('next', false), 'next-token view');
      assert.deepEqual(problems, []);
      assert.deepEqual(panel.errors, []);
    });
  }
});
