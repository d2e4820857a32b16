/**
 * A new layer kind needs only its own description: a test-only kind (a scaled identity mixer with
 * one parameter) is loaded into a graph and run by the float64 reference and the tfjs forward,
 * with no change to the loader, the walkers or the internals they record.
 */
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { MemoryTensorStore } from '../../src/engine/formats/memoryStore';
import { configure, keptPerLayer, type LayerKind, type ModelLayer } from '../../src/engine/layers/kind';
import type { Mamba1Config } from '../../src/engine/model/config';
import type { LanguageModel } from '../../src/engine/model/graph';
import { ParamReader, type Param } from '../../src/engine/model/params';
import { referenceForward } from '../../src/engine/reference/forward';
import { add, embed, linear, rmsNorm, type F64 } from '../../src/engine/reference/ops';
import { createTfModel, tfjsForward } from '../../src/engine/tfjs/forward';
import { normalizedError } from '../../src/engine/tensor';
import { useNodeBackend } from '../../src/node/tfjsBackends';

/** out = x ⊙ scale, added to the residual stream. */
function scaled(x: F64, scale: F64): F64 {
  const H = scale.shape[0];
  return { shape: x.shape, data: x.data.map((v, i) => v * scale.data[i % H]) };
}

const SCALE_PARAMS = { scale: { key: 'mixer.scale', shape: (c: Mamba1Config) => [c.dModel] } } as const;

const scaleKind: LayerKind<Mamba1Config, typeof SCALE_PARAMS, { readonly scale: tf.Tensor }> = {
  id: 'scale',
  label: 'scaled identity (test)',
  // No config.json names it: the test binds it to a config itself.
  accepts: (_config): _config is Mamba1Config => false,
  params: SCALE_PARAMS,
  internals: (c) => ({ hidden_in: [c.dModel], out: [c.dModel], hidden_out: [c.dModel] }),
  scanView: () => {
    throw new Error('the scaled identity has no scan');
  },
  reference: (_c, p, x) => {
    const out = scaled(x, p.scale);
    const next = add(x, out);
    // A layer without state carries nothing from one chunk to the next.
    return { next, internals: { hidden_in: x, out, hidden_out: next }, carry: { h: new Float64Array(0) } };
  },
  tfjs: {
    upload: (_c, p, up) => ({ scale: up.tensor(p.scale) }),
    projections: [],
    forward: (_c, w, x) => {
      const out = tf.mul(x, w.scale);
      const next = tf.add(x, out);
      return { next, internals: { hidden_in: x, out, hidden_out: next } };
    },
  },
};

const H = 4, V = 6, LAYERS = 2;
const config: Mamba1Config = {
  arch: 'mamba1', dModel: H, nLayer: LAYERS, dInner: 2 * H, dState: 1, dConv: 1, dtRank: 1, vocabSize: V,
  eps: 1e-5, convBias: false, projBias: false, tieEmbeddings: true,
};
const tensor = (shape: number[], f: (i: number) => number): Param<'float64'> => ({ shape, data: Float64Array.from({ length: shape.reduce((a, b) => a * b) }, (_, i) => f(i)) });
const weights = new Map<string, Param<'float64'>>([
  ['embedding.weight', tensor([V, H], (i) => Math.sin(i + 1))],
  ['norm_f.weight', tensor([H], (i) => 1 + i / 10)],
  ...Array.from({ length: LAYERS }, (_, l): [string, Param<'float64'>] => [`layers.${l}.mixer.scale`, tensor([H], (i) => 0.5 - l + i / 4)]),
]);

async function graph<P extends 'float32' | 'float64'>(precision: P): Promise<LanguageModel<P>> {
  const reader = new ParamReader(new MemoryTensorStore('scale-model', weights), precision, 'config (scale)');
  const kind = configure(scaleKind, config);
  const layers: ModelLayer<P>[] = [];
  for (let l = 0; l < LAYERS; l++) layers.push(await kind.load(reader, `layers.${l}.`, l));
  const embedding = await reader.get('embedding.weight', [V, H]);
  return { config, embedding, layers, normF: await reader.get('norm_f.weight', [H]), lmHead: embedding };
}

describe('a layer kind outside the registry (test-only scaled identity)', () => {
  const ids = [0, 3, 5, 1];

  /** The same model written out by hand. */
  function expectedLogits(): F64 {
    let hidden = embed(ids, weights.get('embedding.weight')!);
    for (let l = 0; l < LAYERS; l++) hidden = add(hidden, scaled(hidden, weights.get(`layers.${l}.mixer.scale`)!));
    return linear(rmsNorm(hidden, weights.get('norm_f.weight')!, config.eps), weights.get('embedding.weight')!);
  }

  it('loads by its declared checkpoint names and runs through the float64 reference, internals and all', async () => {
    const model = await graph('float64');
    const r = referenceForward(model, ids, { layers: [1] });
    assert.ok(normalizedError(r.logits!.data, expectedLogits().data) < 1e-14);
    assert.deepEqual(r.layers.map((l) => [l.layer, Object.keys(l.tensors).sort()]), [[1, ['hidden_in', 'hidden_out', 'out']]]);
    const kept = Object.values(r.layers[0].tensors).reduce((s, t) => s + (t?.data.length ?? 0), 0);
    assert.equal(keptPerLayer(model.layers[1].kind.internals, ids.length, 0, ['hidden_in', 'out', 'hidden_out', 'delta']), kept, 'the memory estimate reads its internals');
  });

  it('runs through the tfjs forward and matches the reference', async () => {
    await useNodeBackend('cpu');
    const tfModel = createTfModel(await graph('float32'));
    try {
      const before = tf.memory().numTensors;
      const r = await tfjsForward(tfModel, ids);
      assert.equal(tf.memory().numTensors, before, 'the forward leaks no tensors');
      assert.ok(normalizedError(r.logits!.data, expectedLogits().data) < 1e-6);
      assert.deepEqual(Object.keys(r.layers[0].tensors).sort(), ['hidden_in', 'hidden_out', 'out']);
    } finally {
      tfModel.dispose();
    }
  });

  it('reports a missing parameter under its checkpoint name', async () => {
    const reader = new ParamReader(new MemoryTensorStore('scale-model', new Map()), 'float64', 'config (scale)');
    await assert.rejects(configure(scaleKind, config).load(reader, 'layers.0.', 0), /is missing tensor "layers\.0\.mixer\.scale" that config \(scale\) requires/);
  });
});
