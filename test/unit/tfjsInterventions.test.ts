/**
 * Interventions and the logit lens in the tfjs forward (fp32), against the float64 reference with
 * the same edits (the oracle: test/unit/interventions.test.ts checks it against the definitions):
 * logits and every internal the tfjs forward records within 1e-4 normalized, and everything
 * before the edited token exactly the clean tfjs run's. On both tfjs scans (./tfjsScans.ts: the
 * cpu/wasm host loop, and the prefix scan webgl runs).
 * And the logit lens (ForwardOptions.logitLens) against the reference's streams through its head,
 * and `inspect --backend cpu --intervene` against the float64 dump of the same intervention.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main';
import { editedModel } from '../../src/engine/interventionInputs';
import type { ForwardOptions, ForwardResult } from '../../src/engine/internals';
import { layerEdits, parseIntervention, type Intervention, type LayerEdit, type StatePatch } from '../../src/engine/interventions';
import { isLanguageModel, type LanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder, loadSeedBlockFile } from '../../src/engine/model/load';
import { headLogits, referenceForward, referenceLayers } from '../../src/engine/reference/forward';
import type { F64 } from '../../src/engine/reference/ops';
import { predictionsFromLogits } from '../../src/engine/predictions';
import { createTfModel, tfjsForward, tfjsLayers, type TfModel } from '../../src/engine/tfjs/forward';
import { normalizedError } from '../../src/engine/tensor';
import { NodeFolderStore } from '../../src/node/files';
import { useNodeBackend } from '../../src/node/tfjsBackends';
import { lastLayerAblated } from './handAblation';
import { SCANS } from './tfjsScans';
import { fixture, openSafetensors } from './fixtures';

/** The tensors of a tfjs run (logits, every layer's internals) whose normalized error against another run's is above `tol`, or not below it with `above`. */
function offTensors(got: ForwardResult<Float32Array>, want: ForwardResult, tol: number, above = true): string[] {
  const errors: string[] = [];
  const check = (name: string, a: ArrayLike<number>, b: ArrayLike<number>) => {
    const e = normalizedError(a, b);
    if (above ? !(e <= tol) : e > tol) errors.push(`${name} ${e.toExponential(2)}`);
  };
  check('logits', got.logits!.data, want.logits!.data);
  got.layers.forEach((l, i) => {
    for (const [name, t] of Object.entries(l.tensors)) check(`layer ${l.layer} ${name}`, t!.data, want.layers[i].tensors[name as keyof typeof l.tensors]!.data);
  });
  return errors;
}

/** Rows [0, end) of a [L, …] tensor. */
const rowsBefore = (t: { shape: readonly number[]; data: Float32Array }, end: number) => t.data.subarray(0, end * (t.data.length / t.shape[0]));

interface Loaded {
  readonly f64: LanguageModel<'float64'>;
  readonly tf: TfModel;
  readonly ids: number[];
}

/**
 * The edits of `texts` on `m`. A steer's vector is made here; a patch-state's state is another
 * run's (the sample reversed, the "clean" run patched into this one), read from its reference run.
 */
function editsOf(m: Loaded, texts: readonly string[]): Map<number, LayerEdit> {
  const list = texts.map(parseIntervention);
  const inputs = new Map<Intervention, Float64Array | StatePatch>();
  const H = m.f64.config.dModel;
  for (const i of list) {
    if (i.kind === 'steer') inputs.set(i, Float64Array.from({ length: H }, (_, j) => Math.sin(j)));
    if (i.kind === 'patch-state') {
      const other = referenceForward(m.f64, [...m.ids].reverse(), { layers: [i.layer], statesAt: [i.token] }).layers[0].tensors;
      inputs.set(i, { token: i.token, h: other.h!.data, conv: other.conv_state!.data });
    }
  }
  return layerEdits(list, m.ids.length, editedModel(m.f64.config), inputs);
}

/** The states every run captures: one early, one after the last token (which most edits change). */
const STATES = [1, -1];

/** One intervention case: its specs, and the first token it may change. */
type Case = readonly [texts: readonly string[], first: number];

function interventionCases(name: string, load: () => Promise<Loaded>, cases: readonly Case[]) {
  for (const [scan, use] of SCANS) {
    describe(`interventions on ${name}, tfjs ${scan}`, function () {
      this.timeout(120_000);
      let m: Loaded;
      let clean32: ForwardResult<Float32Array>;
      before(async () => {
        await use();
        m = await load();
        clean32 = await tfjsForward(m.tf, m.ids, { statesAt: STATES });
      });
      after(() => m?.tf.dispose());

      for (const [texts, first] of cases) {
        it(`${texts.join(' + ')}: the reference's run within 1e-4; before token ${first} the clean run's, exactly`, async () => {
          const edits = editsOf(m, texts);
          const options: ForwardOptions = { edits, statesAt: STATES };
          const want = referenceForward(m.f64, m.ids, options);
          const got = await tfjsForward(m.tf, m.ids, options);
          assert.deepEqual(offTensors(got, want, 1e-4), []);
          // The edit changed the run (the hybrid fixtures' mixers add little to the stream: their own tensors show it).
          assert.notDeepEqual(offTensors(got, clean32, 1e-3, false), [], 'the edit changes the run');
          assert.deepEqual(rowsBefore(got.logits!, first), rowsBefore(clean32.logits!, first), `logits before token ${first}`);
        });
      }
    });
  }
}

const sample = (L: number) => Array.from({ length: L }, (_, i) => (i * 53 + 7) % 1000);

async function loadFolder(folder: string, ids: number[]): Promise<Loaded> {
  const f64 = await loadModelFolder(new NodeFolderStore(folder), 'float64');
  if (!isLanguageModel(f64)) throw new Error(`${folder} is not a language model`);
  return { f64, tf: createTfModel(await loadModelFolder(new NodeFolderStore(folder), 'float32')), ids };
}

// 136 tokens: the prefix scan's chunks are 128, so edits on both sides of a boundary, and a knockout across one.
const PURE: readonly Case[] = [
  [['ablate-write layer=1 tokens=40'], 40],
  [['ablate-write layer=0 tokens=20,130:133'], 20],
  [['scale-delta layer=0 tokens=3:6 factor=2.5 channels=0,2'], 3],
  [['scale-delta layer=1 tokens=60 factor=0'], 60],
  [['zero-state layer=1 token=127'], 127],
  [['knockout layer=1 from=100 to=130'], 130],
  [['knockout layer=0 from=129 to=133'], 133],
  [['knockout layer=0 from=30 to=30', 'zero-state layer=0 token=90', 'ablate-write layer=0 tokens=50'], 30],
  [['steer layer=1 tokens=2,3 vector=v.safetensors:v scale=0.5'], 2],
  [['patch-state layer=1 token=70 from=clean.safetensors'], 70],
  [['patch-state layer=0 token=1 from=clean.safetensors', 'knockout layer=0 from=0 to=5'], 1],
];

for (const name of ['mamba1-tiny', 'mamba2-tiny']) interventionCases(name, () => loadFolder(fixture(name), sample(136)), PURE);

describe('interventions on the simplified block (tfjs, both scans)', function () {
  this.timeout(60_000);
  for (const [scan, use] of SCANS) {
    it(`${scan}: ablate-write, scale-delta and knockout as the reference applies them, within 1e-4`, async () => {
      await use();
      const file = async () => openSafetensors(fixture('seed-block', 'block.safetensors'));
      const [f64, f32] = [await loadSeedBlockFile(await file(), 'float64'), await loadSeedBlockFile(await file(), 'float32')];
      const x = await (await openSafetensors(fixture('seed-block', 'io.safetensors'))).readFloat('x', 'float32');
      const L = x.shape[0];
      const list = ['ablate-write layer=0 tokens=3', 'scale-delta layer=0 tokens=1:4 factor=2', `knockout layer=0 from=2 to=${L - 3}`].map(parseIntervention);
      const options: ForwardOptions = { edits: layerEdits(list, L, { layers: 1, deltaColumns: f64.config.dModel, dModel: f64.config.dModel }), statesAt: [-1] };
      const model = createTfModel(f32);
      try {
        const got = await tfjsLayers(model, x, options);
        const want = referenceLayers(f64, { shape: x.shape, data: Float64Array.from(x.data) }, options);
        const errors: string[] = [];
        for (const [name, t] of Object.entries(got.layers[0].tensors)) {
          const e = normalizedError(t!.data, want.layers[0].tensors[name as keyof typeof got.layers[0]['tensors']]!.data);
          if (!(e <= 1e-4)) errors.push(`${name} ${e.toExponential(2)}`);
        }
        assert.deepEqual(errors, []);
        const clean = await tfjsLayers(model, x, { statesAt: [-1] });
        assert.ok(normalizedError(got.layers[0].tensors.y!.data, clean.layers[0].tensors.y!.data) > 1e-3, 'the edits change y');
      } finally {
        model.dispose();
      }
    });
  }
});

// The hybrids' Mamba operations take the same edits; ablate-path replaces a path's output (48 tokens, as their dumps).
const HYBRID: readonly (readonly [string, readonly Case[]])[] = [
  ['jamba', [ // Mamba-1 + MLP | Mamba-1 + MoE | attention + MLP | Mamba-1 + MoE
    [['ablate-write layer=1 tokens=10'], 10],
    [['knockout layer=3 from=16 to=17'], 17],
    [['patch-state layer=0 token=12 from=clean.safetensors'], 12],
    [['ablate-path layer=0 path=ssm mode=mean'], 0],
    [['ablate-path layer=1 path=mlp mode=zero'], 0],
    [['ablate-path layer=2 path=attention mode=mean'], 0],
  ]],
  ['bamba', [ // Mamba-2 + MLP ×2 | attention + MLP | Mamba-2 + MLP
    [['zero-state layer=1 token=15', 'scale-delta layer=3 tokens=4:8 factor=3'], 4],
    [['patch-state layer=3 token=30 from=clean.safetensors'], 30],
    [['ablate-path layer=0 path=ssm mode=zero'], 0],
  ]],
  ['falcon_h1', [ // Mamba-2 ∥ attention + MLP
    [['ablate-path layer=1 path=attention mode=zero', 'ablate-path layer=0 path=ssm mode=mean'], 0],
  ]],
  ['granitemoehybrid', [ // Mamba-2 + MoE ∥ MLP
    [['ablate-path layer=0 path=mlp mode=mean', 'ablate-write layer=1 tokens=9'], 0],
  ]],
  ['zamba2', [ // Mamba-2 | shared transformer → Mamba-2
    [['steer layer=1 tokens=3 vector=v.safetensors:v scale=0.5', 'ablate-write layer=3 tokens=5'], 3],
  ]],
];

for (const [family, cases] of HYBRID) interventionCases(family, () => loadFolder(fixture('families', family), sample(48)), cases);

describe('the logit lens on tfjs (cpu)', function () {
  this.timeout(60_000);
  // Granite's logits multiplier (1/8) must be in the lens as in the logits.
  for (const [name, folder] of [['mamba1-tiny', fixture('mamba1-tiny')], ['granitemoehybrid', fixture('families', 'granitemoehybrid')]] as const) {
    it(`${name}: each kept layer's lens is its float64 stream through norm_f and lm_head: top-5, next-token probability and rank`, async () => {
      await useNodeBackend('cpu');
      const m = await loadFolder(folder, sample(48));
      try {
        const kept = [0, m.f64.layers.length - 1];
        const got = await tfjsForward(m.tf, m.ids, { logitLens: 5, layers: kept, keep: ['delta'] });
        const want = referenceForward(m.f64, m.ids, { layers: kept });
        assert.deepEqual(got.layers.map((l) => l.layer), kept);
        const L = m.ids.length;
        got.layers.forEach((l, i) => {
          const p = predictionsFromLogits(headLogits(m.f64.config, want.layers[i].tensors.hidden_out as F64, m.f64.normF, m.f64.lmHead), m.ids, 5);
          const lens = l.lens!;
          assert.deepEqual([...lens.ids], [...p.ids], `layer ${l.layer}: top-5 ids`);
          assert.ok(normalizedError(lens.probs, p.probs) < 1e-4, `layer ${l.layer}: top-5 probabilities`);
          assert.ok(normalizedError(lens.nextProb.subarray(0, L - 1), p.nextProb.subarray(0, L - 1)) < 1e-4, `layer ${l.layer}: next-token probabilities`);
          assert.deepEqual([...lens.nextRank], [...p.nextRank], `layer ${l.layer}: next-token ranks`);
        });
        assert.equal((await tfjsForward(m.tf, m.ids, { layers: kept })).layers[0].lens, undefined, 'no lens unless asked');
      } finally {
        m.tf.dispose();
      }
    });
  }
});

describe('inspect --backend cpu --intervene', function () {
  this.timeout(120_000);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mamba-scope-tfjs-intervene-'));
  const inspect = async (name: string, ...argv: string[]) => {
    const err: string[] = [];
    const file = path.join(tmp, name);
    const code = await main(['inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample1.py'), '--max-tokens', '80', '--out', file, ...argv], { out: () => undefined, err: (s) => err.push(s) });
    assert.equal(code, 0, err.join('\n'));
    return openSafetensors(file);
  };

  it('"ablate-write layer=1 tokens=40": the float64 dump\'s run within 1e-4, the clean cpu run\'s before token 40, exactly; and the hand-made ablation after it', async () => {
    const spec = ['--intervene', 'ablate-write layer=1 tokens=40'];
    const [cpu, f64, clean] = [await inspect('cpu.safetensors', '--backend', 'cpu', ...spec), await inspect('f64.safetensors', ...spec), await inspect('clean.safetensors', '--backend', 'cpu')];
    assert.equal(cpu.metadata.interventions, JSON.stringify(['ablate-write layer=1 tokens=40']));
    const errors: string[] = [];
    for (const key of f64.names().filter((k) => k === 'logits' || k.startsWith('layers.'))) {
      const e = normalizedError((await cpu.readFloat(key, 'float64')).data, (await f64.readFloat(key, 'float64')).data);
      if (!(e <= 1e-4)) errors.push(`${key} ${e.toExponential(2)}`);
    }
    assert.deepEqual(errors, []);
    const [logits, cleanLogits] = [await cpu.readFloat('logits', 'float32'), await clean.readFloat('logits', 'float32')];
    const V = logits.shape[1];
    assert.deepEqual(logits.data.subarray(0, 40 * V), cleanLogits.data.subarray(0, 40 * V), 'logits before token 40');
    const model = await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float64');
    const ids = [...((await cpu.readNative('input_ids')).data as Int32Array)];
    const want = lastLayerAblated(model as LanguageModel<'float64'>, referenceForward(model, ids), 40);
    assert.ok(normalizedError(logits.data, want.data) < 1e-4, 'the logits: layer 1\'s scan with B_40 zeroed, by hand');
  });
});
