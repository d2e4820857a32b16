/**
 * ablate-path in the float64 reference (docs/INTERVENTIONS.md): a hybrid layer's path output
 * (ssm_out, attn_out, mlp_out as recorded) replaced by zeros or by its mean over the positions.
 * Checked against the layer's composition written out from the clean run's own tensors: x + Σ
 * branch scale · (Σ op outScale · path), with the path replaced by hand.
 */
import assert from 'node:assert/strict';
import { editedModel } from '../../src/engine/interventionInputs';
import type { ForwardResult } from '../../src/engine/internals';
import { layerEdits, parseIntervention } from '../../src/engine/interventions';
import type { HybridLayerConfig } from '../../src/engine/layers/hybrid/config';
import { isLanguageModel, type LanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { normalizedError } from '../../src/engine/tensor';
import { NodeFolderStore } from '../../src/node/files';
import { fixture } from './fixtures';

const close = (got: ArrayLike<number>, want: ArrayLike<number>, what: string) => {
  const e = normalizedError(got, want);
  assert.ok(e <= 1e-9, `${what}: normalized error ${e}`);
};

async function load(...folder: string[]): Promise<LanguageModel<'float64'>> {
  const model = await loadModelFolder(new NodeFolderStore(fixture(...folder)), 'float64');
  assert.ok(isLanguageModel(model));
  return model;
}

const ids = Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 500);
const intervened = (model: LanguageModel<'float64'>, spec: string) => referenceForward(model, ids, { edits: layerEdits([parseIntervention(spec)], ids.length, editedModel(model.config)) });
const configOf = (model: LanguageModel<'float64'>, layer: number) => model.layers[layer].open((_kind, config) => config) as HybridLayerConfig;
/** Every row the column means of x [L, H], by loops. */
const meanRows = (x: { shape: readonly number[]; data: ArrayLike<number> }) => {
  const [L, H] = x.shape;
  const out = new Float64Array(L * H);
  for (let j = 0; j < H; j++) {
    let s = 0;
    for (let t = 0; t < L; t++) s += x.data[t * H + j];
    for (let t = 0; t < L; t++) out[t * H + j] = s / L;
  }
  return out;
};
const tensors = (r: ForwardResult<Float64Array>, layer: number) => r.layers[layer].tensors;

describe('ablate-path on the hybrids (float64 reference)', function () {
  this.timeout(60_000);

  for (const mode of ['zero', 'mean'] as const) {
    it(`jamba layer 1 (Mamba-1 + MoE): path=mlp mode=${mode}: hidden_out = hidden_in + out + ${mode === 'zero' ? '0' : 'the mean of the clean mlp_out'}`, async () => {
      const model = await load('families', 'jamba');
      const clean = referenceForward(model, ids);
      const r = intervened(model, `ablate-path layer=1 path=mlp mode=${mode}`);
      const c = configOf(model, 1);
      const x = tensors(clean, 1);
      const ff = mode === 'zero' ? new Float64Array(x.mlp_out!.data.length) : meanRows(x.mlp_out!);
      const want = Float64Array.from(x.hidden_in!.data, (v, i) => v + c.branches[0].scale * x.out!.data[i] + c.branches[1].scale * ff[i]);
      close(tensors(r, 1).hidden_out!.data, want, 'hidden_out');
      close(tensors(r, 1).mlp_out!.data, ff, 'mlp_out as replaced');
      close(tensors(r, 0).hidden_out!.data, x.hidden_in!.data, 'the layer before is unchanged');
      assert.ok(normalizedError(r.logits!.data, clean.logits!.data) > 1e-9, 'the logits change');
    });
  }

  it('falcon_h1 layer 0 (Mamba-2 ∥ attention + MLP): path=attention mode=mean: the mixer branch is the Mamba path plus the attention\'s mean, each times its multiplier', async () => {
    const model = await load('families', 'falcon_h1');
    const clean = referenceForward(model, ids);
    const r = intervened(model, 'ablate-path layer=0 path=attention mode=mean');
    const ops = configOf(model, 0).branches[0].ops;
    const scaleOf = (kind: string) => ops.find((op) => op.kind === kind)!.outScale;
    const x = tensors(clean, 0);
    const attn = meanRows(x.attn_out!);
    close(tensors(r, 0).out!.data, Float64Array.from(x.ssm_out!.data, (v, i) => scaleOf('mamba2') * v + scaleOf('attention') * attn[i]), 'out (the mixer branch)');
    close(tensors(r, 0).ssm_out!.data, x.ssm_out!.data, 'the Mamba path is unchanged');
  });

  it('bamba layer 0 (Mamba-2 + MLP): path=ssm mode=zero: out is 0, the MLP reads the stream entering the layer, and the scan\'s own internals stay', async () => {
    const model = await load('families', 'bamba');
    const clean = referenceForward(model, ids);
    const r = intervened(model, 'ablate-path layer=0 path=ssm mode=zero');
    const c = configOf(model, 0);
    const x = tensors(r, 0);
    assert.ok(x.out!.data.every((v) => v === 0) && x.ssm_out!.data.every((v) => v === 0));
    close(x.hidden_out!.data, Float64Array.from(x.hidden_in!.data, (v, i) => v + c.branches[1].scale * x.mlp_out!.data[i]), 'hidden_out = hidden_in + mlp_out');
    close(x.y!.data, tensors(clean, 0).y!.data, 'the scan ran as before');
    assert.ok(normalizedError(x.mlp_out!.data, tensors(clean, 0).mlp_out!.data) > 1e-6, 'the MLP reads another stream');
  });

  it('is refused in one line on a layer without that path, and on a pure Mamba model', async () => {
    const [jamba, zamba2, mamba1] = await Promise.all([load('families', 'jamba'), load('families', 'zamba2'), load('mamba1-tiny')]);
    assert.throws(() => intervened(jamba, 'ablate-path layer=2 path=ssm'), /^MambaScopeError: intervention "ablate-path layer=2 path=ssm mode=zero": layer 2 has no ssm path \(its paths: attention, mlp\)$/);
    assert.throws(() => intervened(zamba2, 'ablate-path layer=1 path=attention mode=mean'), /layer 1 has no attention path \(its paths: ssm\)/);
    assert.throws(() => intervened(mamba1, 'ablate-path layer=0 path=ssm'), /layer 0 has no paths to ablate: ablate-path is for a hybrid model's layers/);
    assert.throws(() => parseIntervention('ablate-path layer=0 path=mixer'), /needs path=ssm\|attention\|mlp, got "mixer"/);
    assert.throws(() => intervened(jamba, 'ablate-path layer=1 path=mlp') && layerEdits(['ablate-path layer=1 path=mlp', 'ablate-path layer=1 path=mlp mode=mean'].map(parseIntervention), ids.length, editedModel(jamba.config)), /layer 1's mlp path is already ablated/);
  });
});
