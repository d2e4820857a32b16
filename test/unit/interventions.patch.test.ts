/**
 * patch-state in the float64 reference (docs/INTERVENTIONS.md): layer ℓ's state and conv context
 * after token t replaced by another run's, read from that run's dump. Checked against the
 * definition recomputed: the dump's states equal the chunked run of the source's first t + 1
 * tokens (its carry, which the chunked forward hands the next chunk), and the patched layer from
 * t + 1 on is the layer run on those positions from that carry; y_t = C_t·h_patch + D·u_t by loops.
 * On mamba1-tiny, mamba2-tiny and the Mamba layers of Jamba (Mamba-1) and Bamba (Mamba-2).
 */
import assert from 'node:assert/strict';
import { buildDump } from '../../src/engine/formats/dump';
import { MemoryTensorStore } from '../../src/engine/formats/memoryStore';
import type { TensorStore } from '../../src/engine/formats/safetensors';
import type { ForwardResult } from '../../src/engine/internals';
import { editedModel, readInterventionInputs } from '../../src/engine/interventionInputs';
import { layerEdits, parseIntervention } from '../../src/engine/interventions';
import type { LayerCarry } from '../../src/engine/layers/kind';
import { asKind, scanOf } from '../../src/engine/layers/kind';
import { mamba1 } from '../../src/engine/layers/mamba1';
import { mamba2 } from '../../src/engine/layers/mamba2';
import { isLanguageModel, type LanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward, referenceForwardChunked } from '../../src/engine/reference/forward';
import { columns, linear, rmsNorm, type F64 } from '../../src/engine/reference/ops';
import { normalizedError, type Tensor } from '../../src/engine/tensor';
import { NodeFolderStore } from '../../src/node/files';
import { fixture } from './fixtures';

const close = (got: ArrayLike<number>, want: ArrayLike<number>, what: string) => {
  const e = normalizedError(got, want);
  assert.ok(e <= 1e-9, `${what}: normalized error ${e}`);
};
const rows = (t: Tensor<Float64Array>, from: number, to: number): F64 => {
  const W = t.data.length / t.shape[0];
  return { shape: [to - from, ...t.shape.slice(1)], data: Float64Array.from(t.data.subarray(from * W, to * W)) };
};

/** A dump of `result` in memory, as inspect would write it. */
function dumpOf(result: ForwardResult, ids: number[], name: string): TensorStore {
  const { entries, metadata } = buildDump({ inputIds: Int32Array.from(ids), pieces: ids.map(String), result, metadata: {} });
  return new MemoryTensorStore(name, new Map(entries.map((e) => [e.name, e.tensor] as const)), metadata);
}

async function loadLanguageModel(folder: string): Promise<LanguageModel<'float64'>> {
  const model = await loadModelFolder(new NodeFolderStore(folder), 'float64');
  assert.ok(isLanguageModel(model));
  return model;
}

/** The run of `ids` with `spec` applied, its dumps opened from `dumps`. */
async function patched(model: LanguageModel<'float64'>, ids: number[], spec: string, dumps: Record<string, TensorStore>, statesAt?: number[]) {
  const list = [parseIntervention(spec)];
  const open = async (path: string) => dumps[path] ?? assert.fail(`no dump ${path}`);
  const inputs = await readInterventionInputs(list, ids.length, model.config, open);
  return referenceForward(model, ids, { edits: layerEdits(list, ids.length, editedModel(model.config), inputs), ...(statesAt ? { statesAt } : {}) });
}

const CASES: readonly { name: string; folder: string[]; layer: number }[] = [
  { name: 'mamba1-tiny', folder: ['mamba1-tiny'], layer: 1 },
  { name: 'mamba2-tiny', folder: ['mamba2-tiny'], layer: 1 },
  { name: 'jamba (Mamba-1 + MoE layer)', folder: ['families', 'jamba'], layer: 1 },
  { name: 'bamba (Mamba-2 + MLP layer)', folder: ['families', 'bamba'], layer: 1 },
];

for (const { name, folder, layer: l } of CASES) {
  describe(`patch-state on ${name} (float64 reference)`, function () {
    this.timeout(60_000);
    const t = 9;
    // The source run (clean) and the run patched (corrupted): other tokens, another length.
    const source = Array.from({ length: 20 }, (_, i) => (i * 53 + 7) % 500);
    const target = Array.from({ length: 16 }, (_, i) => (i * 31 + 11) % 500);
    let model: LanguageModel<'float64'>;
    let clean: ForwardResult<Float64Array>;
    let dumps: Record<string, TensorStore>;
    before(async () => {
      model = await loadLanguageModel(fixture(...folder));
      const sourceRun = referenceForward(model, source, { statesAt: [3, t, -1] });
      clean = referenceForward(model, target, { statesAt: [t] });
      dumps = { 'source.safetensors': dumpOf(sourceRun, source, 'source.safetensors'), 'target.safetensors': dumpOf(clean, target, 'target.safetensors') };
    });

    it('--states-at records h and conv_state after token t: the chunked run of the first t + 1 tokens carries them, and conv_state is the pre-conv inputs t − K + 2 … t', async () => {
      const carry = (await referenceForwardChunked(model, source.slice(0, t + 1))).final[l];
      const dump = dumps['source.safetensors'];
      const h = await dump.readFloat(`layers.${l}.h`, 'float64');
      const conv = await dump.readFloat(`layers.${l}.conv_state`, 'float64');
      const size = carry.h.length, convSize = carry.conv!.data.length;
      close(h.data.subarray(size, 2 * size), carry.h, 'h after token t');
      close(conv.data.subarray(convSize, 2 * convSize), carry.conv!.data, 'conv_state after token t');
      // The pre-conv inputs by definition, on the plain Mamba kinds: in_proj's x (Mamba-1) or x | B | C (Mamba-2) of the normed stream.
      const m1 = asKind(model.layers[l], mamba1), m2 = asKind(model.layers[l], mamba2);
      if (!m1 && !m2) return;
      const run = referenceForward(model, source, { layers: [l] }).layers[0].tensors;
      const p = (m1 ?? m2)!.params, c = (m1 ?? m2)!.config;
      const proj = linear(rmsNorm(run.hidden_in as F64, p.norm, c.eps), p.inProjW, p.inProjB);
      const pre = m1 ? columns(proj, 0, m1.config.dInner) : columns(proj, m2!.config.dInner, m2!.config.dInner + 2 * m2!.config.nGroups * m2!.config.dState);
      const K = c.dConv, C = pre.shape[1];
      const want = new Float64Array((K - 1) * C);
      for (let r = 0; r < K - 1; r++) want.set(pre.data.subarray((t - K + 2 + r) * C, (t - K + 3 + r) * C), r * C);
      close(conv.data.subarray(convSize, 2 * convSize), want, 'conv_state = the inputs t − K + 2 … t');
    });

    it(`patch-state layer=${l} token=${t} from the other run: positions ≤ t − 1 unchanged, y_t = C_t·h_patch + D·u_t, positions t + 1 … continue from the other run's carry`, async () => {
      const r = await patched(model, target, `patch-state layer=${l} token=${t} from=source.safetensors`, dumps);
      const before = (q: 'y' | 'hidden_out') => close(rows(r.layers[l].tensors[q]!, 0, t).data, rows(clean.layers[l].tensors[q]!, 0, t).data, `${q} before t`);
      before('y');
      before('hidden_out');
      close(r.layers[l - 1].tensors.hidden_out!.data, clean.layers[l - 1].tensors.hidden_out!.data, 'the layer before');
      // y_t by loops: the patched state read by this run's C_t, plus this run's D·u_t.
      const carry: LayerCarry = (await referenceForwardChunked(model, source.slice(0, t + 1))).final[l];
      const x = clean.layers[l].tensors;
      const v = scanOf(model.layers[l]);
      const D = x.u!.shape[1], GN = x.B!.shape[1], N = GN / v.groups, heads = v.D.data.length, P = D / heads;
      const yt = new Float64Array(D);
      for (let c = 0; c < D; c++) {
        const k = Math.floor(c / P);
        const g = Math.floor(k / (heads / v.groups));
        yt[c] = v.D.data[k] * x.u!.data[t * D + c];
        for (let n = 0; n < N; n++) yt[c] += x.C!.data[t * GN + g * N + n] * carry.h[c * N + n];
      }
      close(rows(r.layers[l].tensors.y!, t, t + 1).data, yt, 'y_t');
      // From t + 1 on: the layer on this run's stream there, starting from the other run's carry.
      const hiddenIn = rows(clean.layers[l].tensors.hidden_in!, t + 1, target.length);
      const step = model.layers[l].open((kind, config, params) => kind.reference(config, params, hiddenIn, new Int32Array(0), carry));
      close(rows(r.layers[l].tensors.y!, t + 1, target.length).data, step.internals.y!.data, 'y after t');
      close(rows(r.layers[l].tensors.hidden_out!, t + 1, target.length).data, step.next.data, 'hidden_out after t');
      assert.ok(normalizedError(rows(r.logits!, t, target.length).data, rows(clean.logits!, t, target.length).data) > 1e-6, 'the logits from t on change');
      close(rows(r.logits!, 0, t).data, rows(clean.logits!, 0, t).data, 'logits before t');
    });

    it('a patch from the run\'s own dump changes nothing, and the patched run records the patched state', async () => {
      const r = await patched(model, target, `patch-state layer=${l} token=${t} from=target.safetensors`, dumps, [t]);
      assert.ok(normalizedError(r.logits!.data, clean.logits!.data) <= 1e-12);
      const other = await patched(model, target, `patch-state layer=${l} token=${t} from=source.safetensors`, dumps, [t]);
      close(other.layers[l].tensors.h!.data, (await referenceForwardChunked(model, source.slice(0, t + 1))).final[l].h, 'h after t is the patch');
    });
  });
}

describe('patch-state refusals', () => {
  let m1: LanguageModel<'float64'>, m2: LanguageModel<'float64'>, jamba: LanguageModel<'float64'>;
  const ids = Array.from({ length: 12 }, (_, i) => i + 3);
  let dump: TensorStore;
  before(async () => {
    [m1, m2, jamba] = await Promise.all([loadLanguageModel(fixture('mamba1-tiny')), loadLanguageModel(fixture('mamba2-tiny')), loadLanguageModel(fixture('families', 'jamba'))]);
    dump = dumpOf(referenceForward(m1, ids, { statesAt: [4] }), ids, 'run.safetensors');
  });
  const read = (model: LanguageModel<'float64'>, spec: string, store: TensorStore) => readInterventionInputs([parseIntervention(spec)], ids.length, model.config, async () => store);

  it('names the dump and the problem in one line', async () => {
    await assert.rejects(read(m1, 'patch-state layer=1 token=5 from=run.safetensors', dump), /^MambaScopeError: run\.safetensors: holds layer 1's state after tokens 4, not after token 5: write it with the float64 reference's inspect --states-at 5$/m);
    await assert.rejects(read(m2, 'patch-state layer=1 token=4 from=run.safetensors', dump), /run\.safetensors: layers\.1\.h is \[1, 256, 16\]; layer 1 of this model needs \[1, 8, 32, 32\]: a dump of another model shape/);
    const noConv = new MemoryTensorStore('old.safetensors', new Map(await Promise.all(dump.names().filter((n) => !n.endsWith('conv_state')).map(async (n) => [n, await dump.readNative(n)] as const))));
    await assert.rejects(read(m1, 'patch-state layer=0 token=4 from=old.safetensors', noConv), /old\.safetensors: has no layers\.0\.conv_state \(the conv context patch-state also replaces\)/);
    await assert.rejects(read(m1, 'patch-state layer=0 token=4 from=none', new MemoryTensorStore('none', new Map())), /none: has no states of layer 0 \(layers\.0\.h_tokens\): write it/);
    await assert.rejects(read(jamba, 'patch-state layer=2 token=4 from=run.safetensors', dump), /layer 2 \(attention \+ MLP\) has no recurrent state to patch/);
    await assert.rejects(read(m1, 'patch-state layer=0 token=12 from=run.safetensors', dump), /token 12 is outside the 12-token sample/);
    assert.throws(() => parseIntervention('patch-state layer=0 token=3'), /needs from=DUMP/);
    const [zero, patch, again] = ['zero-state layer=1 token=4', 'patch-state layer=1 token=4 from=run.safetensors', 'patch-state layer=1 token=4 from=run.safetensors'].map(parseIntervention);
    const inputs = await readInterventionInputs([patch, again], ids.length, m1.config, async () => dump);
    assert.throws(() => layerEdits([zero, patch], ids.length, editedModel(m1.config), inputs), /^MambaScopeError: layer 1: has both a zero-state and a patch-state at token 4: choose one$/);
    assert.throws(() => layerEdits([patch, again], ids.length, editedModel(m1.config), inputs), /layer 1 already has a patch-state: one per layer/);
  });
});
