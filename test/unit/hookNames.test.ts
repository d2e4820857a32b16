/**
 * TransformerLens / MambaLens hook names in a dump's metadata (formats/hookNames.ts): each names a
 * tensor the dump holds, and means what the library means by it (hook_ssm_output is y with D·u:
 * C_t·h_t + D·u_t at a saved state; hook_h.{t} is the state after token t).
 */
import assert from 'node:assert/strict';
import { buildDump } from '../../src/engine/formats/dump';
import { isLanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import type { Tensor } from '../../src/engine/tensor';
import { NodeFolderStore } from '../../src/node/files';
import { fixture } from './fixtures';

async function dumpOf(...folder: string[]) {
  const model = await loadModelFolder(new NodeFolderStore(fixture(...folder)), 'float64');
  assert.ok(isLanguageModel(model));
  const ids = Array.from({ length: 10 }, (_, i) => (i * 13 + 2) % 500);
  const { entries, metadata } = buildDump({ inputIds: Int32Array.from(ids), pieces: ids.map(String), result: referenceForward(model, ids, { statesAt: [7, 3] }), metadata: {} });
  const tensors = new Map(entries.map((e) => [e.name, e.tensor]));
  const hooks = JSON.parse(metadata.hook_names) as Record<string, string>;
  return { tensors, hooks };
}

/** The tensor a hook names: a key, or key[row] for one row along the first axis. */
function resolve(tensors: ReadonlyMap<string, Tensor>, target: string): { shape: readonly number[]; data: ArrayLike<number> } {
  const m = /^(.+)\[(\d+)\]$/.exec(target);
  const t = tensors.get(m ? m[1] : target) as { shape: readonly number[]; data: ArrayLike<number> } | undefined;
  assert.ok(t, `${target} names no tensor of the dump`);
  if (!m) return t;
  const row = Number(m[2]);
  assert.ok(row < t.shape[0], `${target}: row ${row} of ${t.shape[0]}`);
  const size = t.data.length / t.shape[0];
  return { shape: t.shape.slice(1), data: Array.prototype.slice.call(t.data, row * size, (row + 1) * size) as number[] };
}

describe('hook-name aliases in dumps', () => {
  it('mamba1-tiny: every alias names a tensor of the dump; the TransformerLens and MambaLens names of each layer', async () => {
    const { tensors, hooks } = await dumpOf('mamba1-tiny');
    for (const target of Object.values(hooks)) resolve(tensors, target);
    for (const l of [0, 1]) {
      assert.deepEqual(
        Object.fromEntries(Object.entries(hooks).filter(([k]) => k.startsWith(`blocks.${l}.`)).sort(([a], [b]) => a.localeCompare(b))),
        Object.fromEntries(Object.entries({
          hook_resid_pre: 'hidden_in', hook_resid_post: 'hidden_out', hook_skip: 'z', hook_ssm_input: 'u', hook_delta: 'delta', hook_B: 'B', hook_C: 'C',
          hook_ssm_output: 'y', hook_out_proj: 'out', hook_mixer_out: 'out', 'mixer.hook_out': 'out', 'mixer.hook_ssm_out': 'out', 'hook_h.3': 'h[0]', 'hook_h.7': 'h[1]',
        }).map(([k, v]) => [`blocks.${l}.${k}`, `layers.${l}.${v}`]).sort(([a], [b]) => a.localeCompare(b))),
      );
    }
    assert.equal(hooks.hook_embed, 'layers.0.hidden_in');
    assert.equal(hooks.hook_logits, 'logits');
    assert.deepEqual([...(tensors.get('layers.1.h_tokens')!.data as Int32Array)], [3, 7]);
  });

  it('mean what the libraries mean: hook_ssm_output at t is C_t·hook_h.t + D·hook_ssm_input at t (y with the skip)', async () => {
    const model = await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float64');
    const { tensors, hooks } = await dumpOf('mamba1-tiny');
    const [y, u, C, h] = ['blocks.1.hook_ssm_output', 'blocks.1.hook_ssm_input', 'blocks.1.hook_C', 'blocks.1.hook_h.7'].map((k) => resolve(tensors, hooks[k]));
    const [D, N] = h.shape;
    const Dskip = model.layers[1].scanView()!.D.data;
    for (let d = 0; d < D; d++) {
      let want = Dskip[d] * u.data[7 * D + d];
      for (let n = 0; n < N; n++) want += C.data[7 * N + n] * h.data[d * N + n];
      assert.ok(Math.abs(y.data[7 * D + d] - want) <= 1e-12 * (1 + Math.abs(want)), `channel ${d}`);
    }
  });

  it('a hybrid (Jamba): the residual stream and its Mamba operation\'s scan by name; its out, a branch\'s sum, has no mixer alias', async () => {
    const { tensors, hooks } = await dumpOf('families', 'jamba');
    for (const target of Object.values(hooks)) resolve(tensors, target);
    assert.equal(hooks['blocks.2.hook_resid_pre'], 'layers.2.hidden_in');
    assert.equal(hooks['blocks.1.hook_delta'], 'layers.1.delta');
    assert.equal(hooks['blocks.2.hook_delta'], undefined, 'layer 2 is attention');
    assert.ok(!Object.keys(hooks).some((k) => k.endsWith('hook_mixer_out') || k.endsWith('hook_out_proj')));
    assert.equal(hooks.hook_embed, undefined, 'Jamba\'s layer 0 is a Mamba layer, but hybrids scale the embedding: not MambaLens\'s hook_embed');
  });
});
