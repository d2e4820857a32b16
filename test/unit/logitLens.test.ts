/**
 * The logit lens in the float64 reference (ForwardOptions.logitLens → LayerInternals.lens): each
 * kept layer's output stream through the final RMSNorm and the lm_head, and the family's logits
 * multiplier (Granite divides by logits_scaling, read here from config.json), written out by loops.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isLanguageModel, type LanguageModel } from '../../src/engine/model/graph';
import { openCheckpoint } from '../../src/engine/formats/checkpoint';
import { loadModelFolder, openModel } from '../../src/engine/model/load';
import { predictionsFromLogits } from '../../src/engine/predictions';
import { referenceForward, referenceForwardStreamed, referenceLayers } from '../../src/engine/reference/forward';
import { NodeFolderStore } from '../../src/node/files';
import { fixture } from './fixtures';

/** Logits of stream x [L, H] by loops: x / √(mean x² + eps) ⊙ w, times lm_head [V, H], times `scale`. */
function lensLogits(model: LanguageModel<'float64'>, x: { shape: readonly number[]; data: ArrayLike<number> }, eps: number, scale: number) {
  const [L, H] = x.shape;
  const V = model.lmHead.shape[0];
  const out = new Float64Array(L * V);
  for (let t = 0; t < L; t++) {
    let ss = 0;
    for (let j = 0; j < H; j++) ss += x.data[t * H + j] ** 2;
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let j = 0; j < H; j++) s += x.data[t * H + j] * r * model.normF.data[j] * model.lmHead.data[v * H + j];
      out[t * V + v] = s * scale;
    }
  }
  return { shape: [L, V], data: out };
}

for (const [folder, epsKey, scaleOf] of [
  [['mamba1-tiny'], 'layer_norm_epsilon', () => 1],
  [['families', 'granitemoehybrid'], 'rms_norm_eps', (c: Record<string, number>) => 1 / c.logits_scaling],
] as const) {
  describe(`logit lens on ${folder.join('/')} (float64 reference)`, () => {
    it('each kept layer\'s lens is its hidden_out through the final norm, the lm_head and the logits multiplier; the last layer\'s is the model\'s own prediction', async () => {
      const model = await loadModelFolder(new NodeFolderStore(fixture(...folder)), 'float64');
      assert.ok(isLanguageModel(model));
      const config = JSON.parse(readFileSync(fixture(...folder, 'config.json'), 'utf8')) as Record<string, number>;
      const ids = Array.from({ length: 12 }, (_, i) => (i * 41 + 3) % 500);
      const r = referenceForward(model, ids, { logitLens: 3 });
      assert.equal(r.layers.length, model.layers.length);
      for (const l of r.layers) {
        const want = predictionsFromLogits(lensLogits(model, l.tensors.hidden_out!, config[epsKey], scaleOf(config)), ids, 3);
        assert.deepEqual([...l.lens!.ids], [...want.ids], `layer ${l.layer} top 3`);
        assert.deepEqual([...l.lens!.nextRank], [...want.nextRank], `layer ${l.layer} next-token rank`);
        l.lens!.nextProb.forEach((p, t) => assert.ok(Number.isNaN(want.nextProb[t]) ? Number.isNaN(p) : Math.abs(p - want.nextProb[t]) <= 1e-6 * want.nextProb[t], `layer ${l.layer} next-token probability at ${t}`));
      }
      const last = predictionsFromLogits(r.logits!, ids, 3);
      assert.deepEqual([...r.layers.at(-1)!.lens!.ids], [...last.ids], 'the last layer is the model');
      assert.equal(referenceForward(model, ids, { layers: [0] }).layers[0].lens, undefined, 'none unless asked');
      const files = new NodeFolderStore(fixture(...folder));
      const streamed = await referenceForwardStreamed(await openModel(model.config, await openCheckpoint(files), 'float64'), ids, { logitLens: 3 });
      assert.deepEqual(streamed.layers.map((l) => l.lens), r.layers.map((l) => l.lens), 'the streamed forward has the same lens');
      assert.throws(() => referenceLayers(model, { shape: [1, model.config.dModel], data: new Float64Array(model.config.dModel) }, { logitLens: 3 }), /the simplified block has not/);
    });
  });
}
