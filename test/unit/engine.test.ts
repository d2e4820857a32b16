/**
 * The engine against the golden dumps: tokenizer ids, the float64 reference and the tfjs forward
 * on the cpu, wasm and WebGPU backends, for Mamba-1, Mamba-2 and the simplified block, to the
 * accuracy README.md states.
 */
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../../src/engine/errors';
import type { SafetensorsFile } from '../../src/engine/formats/safetensors';
import { keptValues, type ForwardResult } from '../../src/engine/internals';
import { parseModelConfig, type LanguageModelConfig } from '../../src/engine/model/config';
import { loadModel, loadModelFolder, loadSeedBlockFile, openModel, weightValues } from '../../src/engine/model/load';
import { openCheckpoint } from '../../src/engine/formats/checkpoint';
import { designNoteOutputs } from '../../src/engine/layers/seedBlock';
import { referenceForward, referenceForwardStreamed, referenceLayers } from '../../src/engine/reference/forward';
import { createTfModel, devicePredictions, moveTfModel, tfjsForward, tfjsLayers } from '../../src/engine/tfjs/forward';
import { layoutFor } from '../../src/engine/tfjs/ops';
import { tfjsOpsHeadScan, tfjsOpsScan } from '../../src/engine/tfjs/scan';
import { normalizedError } from '../../src/engine/tensor';
import { MambaTokenizer } from '../../src/engine/tokenizer';
import { NodeFolderStore } from '../../src/node/files';
import { useNodeBackend } from '../../src/node/tfjsBackends';
import { selectiveScan, selectiveScanHeads } from '../../src/engine/reference/scan';
import { MemoryTensorStore } from '../../src/engine/formats/memoryStore';
import { predictionsFromLogits } from '../../src/engine/predictions';
import { fixture, openSafetensors } from './fixtures';

const MAMBA1_NAMES = ['hidden_in', 'z', 'u', 'delta', 'B', 'C', 'y', 'h'] as const;

/**
 * Normalized-error bounds: README.md's "Accuracy" states exactly these. Each is about twice the
 * largest error measured on the fixtures (in parentheses) or more, so a tenfold regression fails.
 */
const ACCURACY = {
  /** The float64 reference against the dump's internals, an independent float64 computation stored in float32 (5.4e-8). */
  referenceInternals: 1e-7,
  /** The float64 reference against transformers' own fp32 outputs, hf_out and hf_logits, Mamba-1 and Mamba-2 (4.8e-7). */
  referenceTransformers: 1e-6,
  /** The tfjs forward in fp32 against the same dumps, internals and transformers' outputs alike. */
  tfjs: { cpu: 3e-6 /* 6.0e-7 */, wasm: 3e-6 /* 1.3e-6 */ },
  /** The simplified block against its PyTorch float64 internals. */
  seedBlock: { reference: 2e-7 /* 5.5e-8 */, tfjsCpu: 5e-7 /* 2.1e-7 */ },
} as const;

/** Every tensor of `names` in every layer within `tol` of the dump, and the logits within `logitsTol`; a failure lists all that are off. */
async function expectClose(result: ForwardResult, dump: SafetensorsFile, names: readonly string[], tol: number, logitsTol = tol) {
  const errors: string[] = [];
  const check = async (label: string, got: ArrayLike<number>, key: string, bound: number) => {
    const e = normalizedError(got, (await dump.readFloat(key, 'float64')).data);
    if (!(e <= bound)) errors.push(`${label}: ${e} > ${bound}`);
  };
  await check('logits', result.logits!.data, 'hf_logits', logitsTol);
  for (const l of result.layers) {
    for (const n of names) await check(`layer ${l.layer} ${n}`, (l.tensors as Record<string, { data: ArrayLike<number> }>)[n].data, `layers.${l.layer}.${n}`, tol);
  }
  assert.deepEqual(errors, [], 'normalized errors above the bound');
}

describe('tokenizer', () => {
  const tokenizer = MambaTokenizer.fromJson(readFileSync(fixture('mamba1-tiny', 'tokenizer.json'), 'utf8'), 'tokenizer.json');
  const golden = JSON.parse(readFileSync(fixture('samples', 'input_ids.json'), 'utf8')).input_ids as Record<string, number[]>;

  for (const sample of Object.keys(golden)) {
    it(`gives the dumps' input_ids for ${sample}`, () => {
      const { ids } = tokenizer.encode(readFileSync(fixture('samples', sample), 'utf8'));
      assert.deepEqual([...ids], golden[sample]);
    });
  }

  it('maps every token back to its characters, multi-byte ones included', () => {
    const text = 'def f(x):\n    return "héllo 😀 世界"';
    const { tokens, offsets } = tokenizer.encode(text);
    assert.equal(offsets.at(-1)![1], text.length);
    offsets.forEach(([a, b], i) => {
      if (!tokens[i].includes('\uFFFD')) assert.equal(text.slice(a, b), tokens[i]);
      else assert.ok(b > a, 'a partial character still covers its character');
    });
  });

  it('refuses a file that is not a tokenizer', () => {
    assert.throws(() => MambaTokenizer.fromJson('{"model": 3}', 'bad.json'), (e: unknown) => e instanceof InputError && /bad\.json/.test(e.message));
    assert.throws(() => MambaTokenizer.fromJson('not json', 'bad.json'), InputError);
  });
});

describe('config.json', () => {
  it('decodes transformers\' {"__float__": "Infinity"} (Mamba-2 time_step_limit)', () => {
    const c = parseModelConfig(readFileSync(fixture('mamba2-tiny', 'config.json'), 'utf8'), 'config.json');
    assert.equal(c.arch, 'mamba2');
    assert.deepEqual(c.arch === 'mamba2' && c.timeStepLimit, [0, Infinity]);
  });

  it('reads the original state-spaces config (vocab padded, dt_rank auto)', () => {
    const c = parseModelConfig(JSON.stringify({ d_model: 768, n_layer: 24, vocab_size: 50277, ssm_cfg: {}, pad_vocab_size_multiple: 8 }), 'config.json');
    assert.deepEqual({ arch: c.arch, vocab: c.arch === 'mamba1' && c.vocabSize, rank: c.arch === 'mamba1' && c.dtRank }, { arch: 'mamba1', vocab: 50280, rank: 48 });
  });

  it('refuses by name the mamba_ssm fields that would otherwise be ignored with wrong numbers', () => {
    // A mamba_ssm config as its save_pretrained writes it (the reference fixtures' mamba2-ssm)
    // loads; each changed field is refused, naming the file and the field.
    const base = {
      d_model: 128, d_intermediate: 0, n_layer: 2, vocab_size: 1024, attn_layer_idx: [], attn_cfg: {}, rms_norm: true, residual_in_fp32: true,
      fused_add_norm: true, pad_vocab_size_multiple: 16, tie_embeddings: true,
      ssm_cfg: { layer: 'Mamba2', d_state: 32, d_conv: 4, expand: 2, headdim: 32, ngroups: 1, chunk_size: 64 },
    };
    assert.equal(parseModelConfig(JSON.stringify(base), 'config.json').arch, 'mamba2');
    const refused: [string, Record<string, unknown>][] = [
      ['d_intermediate = 512 (an MLP in every block)', { d_intermediate: 512 }],
      ['rms_norm = false (LayerNorm with bias instead of RMSNorm)', { rms_norm: false }],
      ['attn_layer_idx = [1] (attention layers)', { attn_layer_idx: [1] }],
      ['ssm_cfg.rmsnorm = false', { ssm_cfg: { ...base.ssm_cfg, rmsnorm: false } }],
      ['ssm_cfg.norm_before_gate = true', { ssm_cfg: { ...base.ssm_cfg, norm_before_gate: true } }],
      ['ssm_cfg.D_has_hdim = true', { ssm_cfg: { ...base.ssm_cfg, D_has_hdim: true } }],
    ];
    for (const [named, change] of refused) {
      assert.throws(() => parseModelConfig(JSON.stringify({ ...base, ...change }), 'config.json'), (e: Error) => e.message.startsWith(`config.json: ${named}`) && /is not supported yet/.test(e.message), named);
    }
  });

  it('names the file and the field that is wrong', () => {
    assert.throws(() => parseModelConfig('{"model_type": "mamba", "hidden_size": -1}', 'cfg.json'), /cfg\.json: "hidden_size" must be an integer/);
    assert.throws(() => parseModelConfig('{"model_type": "llama"}', 'cfg.json'), /cfg\.json: model_type "llama" is not a Mamba config/);
    assert.throws(() => parseModelConfig('[1]', 'cfg.json'), /cfg\.json: is not a JSON object/);
  });

  it('refuses a checkpoint whose shapes disagree with the config', async () => {
    const config = parseModelConfig(readFileSync(fixture('mamba1-tiny', 'config.json'), 'utf8').replace('"state_size": 16', '"state_size": 8'), 'config.json');
    const store = new MemoryTensorStore('model.safetensors', new Map(Object.entries(await loadAllTensors(fixture('mamba1-tiny', 'model.safetensors')))));
    await assert.rejects(loadModel(config, store, 'float64'), /model\.safetensors: tensor "backbone\.layers\.0\.mixer\.x_proj\.weight" has shape \[40, 256\] but config \(mamba1\) implies \[24, 256\]/);
  });
});

async function loadAllTensors(file: string) {
  const st = await openSafetensors(file);
  return Object.fromEntries(await Promise.all(st.names().map(async (n) => [n, await st.readFloat(n, 'float32')] as const)));
}

describe('float64 reference forward', () => {
  it(`Mamba-1 internals and states match the golden dump within ${ACCURACY.referenceInternals.toExponential()}, transformers' out and logits within ${ACCURACY.referenceTransformers.toExponential()}`, async () => {
    const model = await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float64');
    const dump = await openSafetensors(fixture('dumps', 'mamba1-sample1.safetensors'));
    const ids = (await dump.readNative('input_ids')).data as Int32Array;
    const hTokens = [...((await dump.readNative('layers.0.h_tokens')).data as Int32Array)];
    const result = referenceForward(model, ids, { statesAt: hTokens });
    await expectClose(result, dump, MAMBA1_NAMES, ACCURACY.referenceInternals, ACCURACY.referenceTransformers);
    // out_proj output as transformers computed it on the GPU
    for (const l of result.layers) {
      const e = normalizedError(l.tensors.out!.data, (await dump.readFloat(`layers.${l.layer}.hf_out`, 'float64')).data);
      assert.ok(e <= ACCURACY.referenceTransformers, `layer ${l.layer} hf_out: ${e}`);
    }
  });

  it(`Mamba-2 mixer outputs, residual stream and logits match transformers within ${ACCURACY.referenceTransformers.toExponential()}`, async () => {
    const model = await loadModelFolder(new NodeFolderStore(fixture('mamba2-tiny')), 'float64');
    const dump = await openSafetensors(fixture('dumps', 'mamba2-sample1.safetensors'));
    const result = referenceForward(model, (await dump.readNative('input_ids')).data as Int32Array);
    await expectClose(result, dump, ['out', 'hidden_out'], ACCURACY.referenceTransformers);
  });

  it(`the simplified block reproduces its PyTorch internals within ${ACCURACY.seedBlock.reference.toExponential()}`, async () => {
    const block = await loadSeedBlockFile(await openSafetensors(fixture('seed-block', 'block.safetensors')), 'float64');
    const io = await openSafetensors(fixture('seed-block', 'io.safetensors'));
    assert.equal(block.config.arch, 'seed');
    const r = designNoteOutputs(referenceLayers(block, await io.readFloat('x', 'float64')).layers[0].tensors);
    for (const name of ['x_in', 'res', 'B', 'C', 'delta', 'y'] as const) {
      const e = normalizedError(r[name].data, (await io.readFloat(name, 'float64')).data);
      assert.ok(e <= ACCURACY.seedBlock.reference, `${name}: ${e}`);
    }
  });

  it('only keeps the requested layers and resolves negative state positions', async () => {
    const model = await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float64');
    const r = referenceForward(model, [5, 6, 7, 8], { layers: [1], statesAt: [-1, 0] });
    assert.deepEqual(r.layers.map((l) => l.layer), [1]);
    assert.deepEqual([...r.layers[0].hTokens!], [0, 3]);
    assert.deepEqual(r.layers[0].tensors.h!.shape, [2, 256, 16]);
  });

  for (const name of ['mamba1-tiny', 'mamba2-tiny']) {
    it(`${name}: with its layers streamed from the checkpoint one at a time, bit for bit the same run, and weightValues counts what loads`, async () => {
      const files = new NodeFolderStore(fixture(name));
      const model = await loadModelFolder(files, 'float64');
      const ids = [5, 6, 7, 8, 300, 2, 9];
      const options = { statesAt: [-1, 2] };
      const whole = referenceForward(model, ids, options);
      const streamed = await referenceForwardStreamed(await openModel(model.config as LanguageModelConfig, await openCheckpoint(files), 'float64'), ids, options);
      assert.deepEqual(streamed.logits, whole.logits);
      assert.deepEqual(streamed.layers, whole.layers);
      const counted = weightValues(model.config as LanguageModelConfig);
      const loaded = model.layers.map((l) => l.parameters);
      assert.deepEqual(loaded, loaded.map(() => counted.layer));
      const backbone = new Set([model.embedding!, model.normF!, model.lmHead!]);
      assert.equal(counted.backbone, [...backbone].reduce((sum, p) => sum + p.data.length, 0));
    });
  }
});

describe('memory estimate of a run (keptValues)', () => {
  for (const name of ['mamba1-tiny', 'mamba2-tiny']) {
    it(`equals what the forward keeps, for ${name}`, async () => {
      const model = await loadModelFolder(new NodeFolderStore(fixture(name)), 'float64');
      const ids = [5, 6, 7, 8, 9];
      for (const keep of [undefined, ['z', 'u', 'delta', 'B', 'C', 'h'] as const, ['y'] as const]) {
        const r = referenceForward(model, ids, { layers: [0, 1], statesAt: [-1, 0], keep });
        const kept = r.layers.reduce((sum, l) => sum + Object.values(l.tensors).reduce((s, t) => s + (t?.data.length ?? 0), 0), 0);
        assert.equal(keptValues(model.config, { tokens: ids.length, layers: 2, states: 2, keep }), kept, `keep ${keep?.join(',') ?? 'all'}`);
      }
    });
  }
});

describe('tfjs forward (fp32)', function () {
  this.timeout(180_000);
  for (const backend of ['cpu', 'wasm'] as const) {
    it(`Mamba-1 on ${backend} matches the golden dump within ${ACCURACY.tfjs[backend].toExponential()}`, async () => {
      await useNodeBackend(backend);
      const tfModel = createTfModel(await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float32'));
      const dump = await openSafetensors(fixture('dumps', 'mamba1-sample1.safetensors'));
      const before = tf.memory().numTensors;
      const result = await tfjsForward(tfModel, (await dump.readNative('input_ids')).data as Int32Array, {
        statesAt: [...((await dump.readNative('layers.0.h_tokens')).data as Int32Array)],
      });
      assert.equal(tf.memory().numTensors, before, 'the forward leaks no tensors');
      await expectClose(result, dump, MAMBA1_NAMES, ACCURACY.tfjs[backend]);
      tfModel.dispose();
    });
  }

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`on ${backend}, keeps only the internals asked for and computes next-token predictions on the device instead of the logits`, async () => {
      await useNodeBackend(backend);
      const tfModel = createTfModel(await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float32'));
      const dump = await openSafetensors(fixture('dumps', 'mamba1-sample1.safetensors'));
      const ids = (await dump.readNative('input_ids')).data as Int32Array;
      const before = tf.memory().numTensors;
      const slim = await tfjsForward(tfModel, ids, { keep: ['delta', 'B'], predictions: 5 });
      assert.equal(tf.memory().numTensors, before, 'no tensors leak');
      assert.equal(slim.logits, undefined);
      assert.deepEqual(slim.layers.map((l) => Object.keys(l.tensors).sort()), [['B', 'delta'], ['B', 'delta']]);
      const full = await tfjsForward(tfModel, ids);
      const want = predictionsFromLogits(full.logits!, ids, 5);
      const got = slim.predictions!;
      assert.deepEqual([...got.ids], [...want.ids]);
      assert.ok(normalizedError(got.probs, want.probs) < 1e-5);
      assert.deepEqual([...got.nextRank], [...want.nextRank]);
      assert.ok(Number.isNaN(got.nextProb[ids.length - 1]) && got.nextRank[ids.length - 1] === -1, 'nothing follows the last token');
      assert.ok(normalizedError(got.nextProb.subarray(0, -1), want.nextProb.subarray(0, -1)) < 1e-5);
      tfModel.dispose();
    });

    it(`on ${backend}, predictions computed in many row blocks equal those from the whole logits`, async () => {
      await useNodeBackend(backend);
      let seed = 7;
      const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296) * 4 - 2;
      const L = 23, H = 8, V = 50;
      const normed = tf.tensor2d(Float32Array.from({ length: L * H }, random), [L, H]);
      const lmHead = tf.tensor2d(Float32Array.from({ length: V * H }, random), [V, H]);
      const ids = Int32Array.from({ length: L }, (_, i) => (i * 13) % V);
      const logits = tf.matMul(normed, lmHead, false, true);
      const want = predictionsFromLogits({ shape: [L, V], data: (await logits.data()) as Float32Array }, ids, 3);
      const before = tf.memory().numTensors;
      // Blocks of 5 rows: 5 blocks, the last one short.
      const got = await devicePredictions(normed, lmHead, layoutFor(backend), ids, 3, 5 * 4 * V);
      assert.equal(tf.memory().numTensors, before, 'no tensors leak');
      assert.deepEqual([...got.ids], [...want.ids]);
      assert.deepEqual([...got.nextRank], [...want.nextRank]);
      assert.ok(normalizedError(got.probs, want.probs) < 1e-6);
      assert.ok(normalizedError(got.nextProb.subarray(0, -1), want.nextProb.subarray(0, -1)) < 1e-6);
      tf.dispose([normed, lmHead, logits]);
    });
  }

  it(`Mamba-2 on cpu matches transformers within ${ACCURACY.tfjs.cpu.toExponential()}`, async () => {
    await useNodeBackend('cpu');
    const tfModel = createTfModel(await loadModelFolder(new NodeFolderStore(fixture('mamba2-tiny')), 'float32'));
    const dump = await openSafetensors(fixture('dumps', 'mamba2-sample1.safetensors'));
    await expectClose(await tfjsForward(tfModel, (await dump.readNative('input_ids')).data as Int32Array), dump, ['out', 'hidden_out'], ACCURACY.tfjs.cpu);
    tfModel.dispose();
  });

  it(`the simplified block on cpu matches within ${ACCURACY.seedBlock.tfjsCpu.toExponential()}`, async () => {
    await useNodeBackend('cpu');
    const tfModel = createTfModel(await loadSeedBlockFile(await openSafetensors(fixture('seed-block', 'block.safetensors')), 'float32'));
    const io = await openSafetensors(fixture('seed-block', 'io.safetensors'));
    const r = designNoteOutputs((await tfjsLayers(tfModel, await io.readFloat('x', 'float32'))).layers[0].tensors);
    for (const name of ['x_in', 'res', 'B', 'C', 'delta', 'y'] as const) {
      const e = normalizedError(r[name].data, (await io.readFloat(name, 'float64')).data);
      assert.ok(e <= ACCURACY.seedBlock.tfjsCpu, `${name}: ${e}`);
    }
    tfModel.dispose();
  });
});

describe('moving an uploaded model between backends (moveTfModel)', function () {
  this.timeout(120_000);
  it('gives the same logits on cpu → wasm → cpu, turning the projections to each backend’s layout', async () => {
    const dump = await openSafetensors(fixture('dumps', 'mamba1-sample1.safetensors'));
    const ids = (await dump.readNative('input_ids')).data as Int32Array;
    await useNodeBackend('cpu');
    let model = createTfModel(await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float32'));
    const first = (await tfjsForward(model, ids, { layers: [] })).logits!;
    for (const backend of ['wasm', 'cpu'] as const) {
      await useNodeBackend(backend);
      const before = tf.memory().numTensors;
      model = await moveTfModel(model);
      assert.equal(model.layout, layoutFor(backend));
      assert.equal(tf.memory().numTensors, before, `${backend}: the old copies are freed as the new ones are made`);
      const logits = (await tfjsForward(model, ids, { layers: [] })).logits!;
      assert.ok(normalizedError(logits.data, first.data) < 1e-5, `${backend}: ${normalizedError(logits.data, first.data)}`);
    }
    model.dispose();
  });
});

describe('a streamed model on tfjs (createTfModel of openModel)', function () {
  this.timeout(120_000);
  for (const backend of ['cpu', 'wasm'] as const) {
    it(`${backend}: the same run as the resident model, with no layer left on the backend after it`, async () => {
      await useNodeBackend(backend);
      const files = new NodeFolderStore(fixture('mamba2-tiny'));
      const ids = [5, 6, 7, 8, 300, 2, 9];
      const options = { statesAt: [-1, 2] };
      const resident = createTfModel(await loadModelFolder(files, 'float32'));
      const expected = await tfjsForward(resident, ids, options);
      resident.dispose();
      const before = tf.memory().numTensors;
      const streamed = createTfModel(await openModel((await loadModelFolder(files, 'float32')).config as LanguageModelConfig, await openCheckpoint(files), 'float32'));
      const backbone = tf.memory().numTensors - before;
      const got = await tfjsForward(streamed, ids, options);
      assert.equal(tf.memory().numTensors - before, backbone, 'only the backbone stays on the backend');
      assert.deepEqual(got.logits, expected.logits);
      assert.deepEqual(got.layers, expected.layers);
      // A backend switch moves the backbone; the layers are uploaded in the new layout by the next run.
      await useNodeBackend(backend === 'cpu' ? 'wasm' : 'cpu');
      const moved = await moveTfModel(streamed);
      const again = await tfjsForward(moved, ids, options);
      assert.ok(normalizedError(again.logits!.data, expected.logits!.data) < 1e-5);
      moved.dispose();
    });
  }
});

describe('tfjs-ops scan (the path for webgl)', () => {
  const rand = (n: number, lo: number, hi: number, seed: number) => {
    let s = seed;
    return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * (hi - lo) + lo);
  };

  it('matches the sequential reference across chunk boundaries, with extreme Δ and no NaN', async () => {
    await useNodeBackend('cpu');
    const L = 300, D = 6, N = 4;
    const delta = rand(L * D, 1e-4, 50, 1);
    const inputs = { u: rand(L * D, -2, 2, 2), A: rand(D * N, -40, -0.01, 3), B: rand(L * N, -1, 1, 4), C: rand(L * N, -1, 1, 5), Dv: rand(D, 0, 1, 6) };
    const at = Int32Array.from([0, 127, 128, 299]);
    const ref = selectiveScan({ shape: [L, D], data: inputs.u }, { shape: [L, D], data: delta }, { shape: [D, N], data: inputs.A }, { shape: [L, N], data: inputs.B }, { shape: [L, N], data: inputs.C }, { shape: [D], data: inputs.Dv }, at);
    const out = tfjsOpsScan({
      u: tf.tensor2d(inputs.u, [L, D]), delta: tf.tensor2d(delta, [L, D]), A: tf.tensor2d(inputs.A, [D, N]),
      B: tf.tensor2d(inputs.B, [L, N]), C: tf.tensor2d(inputs.C, [L, N]), D: tf.tensor1d(inputs.Dv), statesAt: at,
    });
    const y = await out.y.data();
    assert.ok(y.every(Number.isFinite));
    assert.ok(normalizedError(y, ref.y.data) < 1e-5);
    assert.ok(normalizedError(await out.h!.data(), ref.h.data) < 1e-5);
  });

  it('Mamba-2 head scan with 2 groups matches the reference', async () => {
    await useNodeBackend('cpu');
    const L = 140, heads = 4, P = 3, G = 2, N = 5;
    const x = rand(L * heads * P, -2, 2, 7), delta = rand(L * heads, 0.01, 2, 8), A = rand(heads, -3, -0.1, 9);
    const B = rand(L * G * N, -1, 1, 10), C = rand(L * G * N, -1, 1, 11), Dv = rand(heads, 0, 1, 12);
    const at = Int32Array.from([5, 139]);
    const ref = selectiveScanHeads({ shape: [L, heads * P], data: x }, { shape: [L, heads], data: delta }, { shape: [heads], data: A }, { shape: [L, G * N], data: B }, { shape: [L, G * N], data: C }, { shape: [heads], data: Dv }, G, at);
    const out = tfjsOpsHeadScan({
      x: tf.tensor2d(x, [L, heads * P]), delta: tf.tensor2d(delta, [L, heads]), A: tf.tensor1d(A), B: tf.tensor2d(B, [L, G * N]),
      C: tf.tensor2d(C, [L, G * N]), D: tf.tensor1d(Dv), groups: G, statesAt: at,
    });
    assert.ok(normalizedError(await out.y.data(), ref.y.data) < 1e-5);
    assert.ok(normalizedError(await out.h!.data(), ref.h.data) < 1e-5);
  });
});
