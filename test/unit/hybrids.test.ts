/**
 * The hybrid families against transformers 5.17's own runs of them (test/fixtures/families/<family>:
 * random-weight models from the reference fixtures, their dumps cut to the first 48 of 160 tokens,
 * which a causal model computes the same): the float64 reference layer by layer — every hidden
 * state, each path's output (the Mamba mixer, the attention, the feed-forward branch) — and the
 * logits; the tfjs forward in fp32 on cpu and wasm. The fixtures' mixers add little to the stream (|out| ~ 5e-4), so the paths are checked
 * each on their own, by normalized error.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../../src/engine/formats/checkpoint';
import { erf, rmsNorm } from '../../src/engine/reference/ops';
import { layerLabel } from '../../src/engine/layers/hybrid/config';
import { parseModelConfig, type HybridConfig } from '../../src/engine/model/config';
import { isLanguageModel } from '../../src/engine/model/graph';
import { loadModel, loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { normalizedError } from '../../src/engine/tensor';
import { NodeFolderStore } from '../../src/node/files';
import { predictionsFromLogits } from '../../src/engine/predictions';
import { createTfModel, tfjsForward } from '../../src/engine/tfjs/forward';
import { useNodeBackend } from '../../src/node/tfjsBackends';
import { fixture, openSafetensors } from './fixtures';

/** Which recorded path each dump key is: transformers' module outputs, before the residual and the family's multipliers. */
const PATHS: readonly [RegExp, 'ssm_out' | 'attn_out' | 'mlp_out' | 'out'][] = [
  [/^layers\.(\d+)\.(mamba|mamba_decoder\.mamba\.out_proj)$/, 'ssm_out'],
  [/^layers\.(\d+)\.self_attn$/, 'attn_out'],
  [/^layers\.(\d+)\.feed_forward$/, 'mlp_out'],
  [/^layers\.(\d+)\.mixer$/, 'out'],
];

const FAMILIES: readonly [string, string[]][] = [
  ['jamba', ['Mamba-1 + MLP', 'Mamba-1 + MoE', 'attention + MLP', 'Mamba-1 + MoE']],
  ['bamba', ['Mamba-2 + MLP', 'Mamba-2 + MLP', 'attention + MLP', 'Mamba-2 + MLP']],
  ['granitemoehybrid', ['Mamba-2 + MoE ∥ MLP', 'Mamba-2 + MoE ∥ MLP', 'attention + MoE ∥ MLP', 'Mamba-2 + MoE ∥ MLP']],
  ['nemotron_h', ['Mamba-2', 'MLP', 'Mamba-2', 'attention']],
  ['zamba2', ['Mamba-2', 'shared transformer → Mamba-2', 'Mamba-2', 'shared transformer → Mamba-2']],
  ['falcon_h1', ['Mamba-2 ∥ attention + MLP', 'Mamba-2 ∥ attention + MLP']],
];

describe('hybrid families against transformers (float64 reference)', function () {
  this.timeout(60_000);

  for (const [family, labels] of FAMILIES) {
    it(`${family}: the layers as its config says (${labels.join(' | ')}), every hidden state, each path's output and the logits within 1e-5`, async () => {
      const folder = fixture('families', family);
      const dump = await openSafetensors(join(folder, 'dump.safetensors'));
      const read = async (k: string) => (await dump.readFloat(k, 'float64')).data;
      const model = await loadModelFolder(new NodeFolderStore(folder), 'float64');
      assert.ok(isLanguageModel(model) && model.config.arch === 'hybrid');
      assert.deepEqual((model.config as HybridConfig).layers.map(layerLabel), labels);
      const ids = (await dump.readNative('input_ids')).data as Int32Array;
      const r = referenceForward(model, ids);
      const errors: string[] = [];
      const check = (name: string, actual: ArrayLike<number>, expected: ArrayLike<number>) => {
        const e = normalizedError(actual, expected);
        if (!(e <= 1e-5)) errors.push(`${name} ${e.toExponential(2)}`);
      };
      check('hf_logits', r.logits!.data, await read('hf_logits'));
      // hidden_states.0 is the embedding output; k the stream after layer k − 1; the last one after the final norm.
      const n = r.layers.length;
      check('hidden_states.0', r.layers[0].tensors.hidden_in!.data, await read('hidden_states.0'));
      for (let k = 1; k < n; k++) check(`hidden_states.${k}`, r.layers[k - 1].tensors.hidden_out!.data, await read(`hidden_states.${k}`));
      check(`hidden_states.${n}`, rmsNorm(r.layers[n - 1].tensors.hidden_out!, model.normF, model.config.eps).data, await read(`hidden_states.${n}`));
      let paths = 0;
      for (const key of dump.names()) {
        for (const [pattern, name] of PATHS) {
          const m = pattern.exec(key);
          if (!m) continue;
          const t = r.layers[Number(m[1])].tensors[name];
          if (!t) errors.push(`${key}: layer ${m[1]} recorded no ${name}`);
          else check(key, t.data, await read(key));
          paths++;
        }
      }
      // Granite's feed-forward branch is its MoE plus its shared MLP, dumped apart; its router key holds the chosen experts.
      for (const l of r.layers) {
        if (!dump.info(`layers.${l.layer}.block_sparse_moe`)) continue;
        const [moe, shared] = [await read(`layers.${l.layer}.block_sparse_moe`), await read(`layers.${l.layer}.shared_mlp`)];
        check(`layers.${l.layer}.block_sparse_moe + shared_mlp`, l.tensors.mlp_out!.data, moe.map((v, i) => v + shared[i]));
        assert.deepEqual([...l.tensors.moe_experts!.data], [...(await read(`layers.${l.layer}.block_sparse_moe.router`))], `layer ${l.layer}: the experts chosen`);
        paths++;
      }
      assert.ok(paths >= n, `${paths} paths checked`);
      assert.deepEqual(errors, []);
    });
  }

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`${backend}: the tfjs forward in fp32 matches transformers' logits and hidden states within 1e-4 for every family, and its top-1 predictions its logits`, async () => {
      await useNodeBackend(backend);
      const errors: string[] = [];
      for (const [family] of FAMILIES) {
        const folder = fixture('families', family);
        const dump = await openSafetensors(join(folder, 'dump.safetensors'));
        const ids = (await dump.readNative('input_ids')).data as Int32Array;
        const model = createTfModel(await loadModelFolder(new NodeFolderStore(folder), 'float32'));
        try {
          const r = await tfjsForward(model, ids);
          const check = (name: string, actual: ArrayLike<number>, expected: ArrayLike<number>) => {
            const e = normalizedError(actual, expected);
            if (!(e <= 1e-4)) errors.push(`${family} ${name} ${e.toExponential(2)}`);
          };
          check('hf_logits', r.logits!.data, (await dump.readFloat('hf_logits', 'float64')).data);
          for (let k = 1; k < r.layers.length; k++) check(`hidden_states.${k}`, r.layers[k - 1].tensors.hidden_out!.data, (await dump.readFloat(`hidden_states.${k}`, 'float64')).data);
          // The device's top-k carries the family's logits multiplier (Granite divides by 8): its probabilities are the logits' softmax.
          const p = (await tfjsForward(model, ids, { predictions: 3, layers: [] })).predictions!;
          const fromLogits = predictionsFromLogits(r.logits!, ids, 3);
          assert.deepEqual([...p.ids], [...fromLogits.ids], `${family}: top-3 ids`);
          assert.ok(normalizedError(p.probs, fromLogits.probs) < 1e-5, `${family}: top-3 probabilities`);
        } finally {
          model.dispose();
        }
      }
      assert.deepEqual(errors, []);
    });
  }

  it('the checks can fail: Granite without its residual multiplier, Zamba2 without its adapters, Falcon-H1 without its Mamba branch are far off', async () => {
    const off = async (family: string, change: (config: HybridConfig) => HybridConfig, key: string, layer: number, path: 'hidden_out' | 'ssm_out') => {
      const folder = fixture('families', family);
      const config = change(parseModelConfig(readFileSync(join(folder, 'config.json'), 'utf8'), 'config.json') as HybridConfig);
      const model = await loadModel(config, await openCheckpoint(new NodeFolderStore(folder)), 'float64');
      const dump = await openSafetensors(join(folder, 'dump.safetensors'));
      const r = referenceForward(model, (await dump.readNative('input_ids')).data as Int32Array);
      return normalizedError(r.layers[layer].tensors[path]!.data, (await dump.readFloat(key, 'float64')).data);
    };
    const granite = await off('granitemoehybrid', (c) => ({ ...c, layers: c.layers.map((l) => ({ ...l, branches: l.branches.map((b) => ({ ...b, scale: 1 })) })) }), 'hidden_states.1', 0, 'hidden_out');
    assert.ok(granite > 1e-2, `granite ${granite}`);
    const zamba = await off('zamba2', (c) => ({ ...c, layers: c.layers.map((l) => ({ ...l, branches: l.branches.map((b) => (b.shared ? { ...b, shared: { ...b.shared, mlp: { ...b.shared.mlp, adapter: undefined } } } : b)) })) }), 'layers.1.mamba_decoder.mamba.out_proj', 1, 'ssm_out');
    assert.ok(zamba > 1e-4, `zamba2 ${zamba}`);
    const falcon = await off('falcon_h1', (c) => ({ ...c, layers: c.layers.map((l) => ({ ...l, branches: l.branches.map((b, i) => (i === 0 ? { ...b, ops: b.ops.filter((op) => op.kind !== 'mamba2') } : b)) })) }), 'hidden_states.1', 0, 'hidden_out');
    assert.ok(falcon > 1e-5, `falcon_h1 ${falcon}`);
  });

  it('erf, which GELU needs, to 1e-15 of its tabulated values', () => {
    // erf(0.5), erf(1), erf(2), erf(3.5), erf(−0.1) to 16 digits (Abramowitz & Stegun; checked against mpmath).
    const table: [number, number][] = [[0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [3.5, 0.9999992569016276], [-0.1, -0.1124629160182849]];
    for (const [x, v] of table) assert.ok(Math.abs(erf(x) - v) <= 1e-15, `erf(${x}) = ${erf(x)}, not ${v}`);
    assert.equal(erf(0), 0);
    assert.equal(erf(7), 1);
  });
});
