/**
 * `mamba-scope inspect --backend webgpu` (the native engine through Dawn + SwiftShader here) in the
 * two modes the float64 reference had alone: the long mode (--positions, in 2048-token chunks,
 * webgpu/longRun.ts) and an intervened run (--intervene). Each against the same command on
 * the float64 reference, the oracle: the long run's logits, loss and final states within 1e-5
 * normalized over 2,500 tokens (two chunks, the state and conv context carried across); an
 * ablated and a patched run's logits within fp32's tolerance (rtol 6e-4, atol 2e-3) everywhere.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main';
import { normalizedError } from '../../src/engine/tensor';
import { fixture, openSafetensors } from './fixtures';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mamba-scope-cli-webgpu-'));
const outFile = (name: string) => path.join(tmp, name);

describe('cli inspect --backend webgpu', function () {
  this.timeout(300_000);

  it('--positions: 2,500 tokens in two chunks are the float64 long run (logits, loss, final h and conv_state within 1e-5)', async () => {
    const ids = Array.from({ length: 2500 }, (_, i) => (i * 37 + 11) % 1000).join(',');
    const base = ['inspect', '--model', fixture('mamba1-tiny'), '--ids', ids, '--positions', '0:2500:500,2047,2048,-1'];
    const gpu = await run(...base, '--backend', 'webgpu', '--out', outFile('long-gpu.safetensors'));
    assert.equal(gpu.code, 0, gpu.err);
    assert.match(gpu.out, /tokens +2500, in 2048-token chunks/);
    const ref = await run(...base, '--out', outFile('long-ref.safetensors'));
    assert.equal(ref.code, 0, ref.err);
    const [a, b] = [await openSafetensors(outFile('long-gpu.safetensors')), await openSafetensors(outFile('long-ref.safetensors'))];
    assert.deepEqual([a.metadata.backend, a.metadata.dtype, a.metadata.mode], ['webgpu', 'float32', 'long']);
    assert.deepEqual([...((await a.readNative('positions')).data as Int32Array)], [0, 500, 1000, 1500, 2000, 2047, 2048, 2499]);
    for (const key of ['logits', 'nll', 'layers.0.h', 'layers.1.h', 'layers.0.conv_state', 'layers.1.conv_state']) {
      const [x, y] = [await a.readFloat(key, 'float64'), await b.readFloat(key, 'float64')];
      assert.deepEqual(x.shape, y.shape, key);
      const e = normalizedError(x.data, y.data);
      assert.ok(e <= 1e-5, `${key}: normalized error ${e}`);
    }
  });

  it('--intervene "ablate-write layer=1 tokens=40" and a patch-state: the float64 reference\'s intervened logits within fp32\'s tolerance', async () => {
    const base = ['inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample1.py'), '--max-tokens', '80', '--intervene', 'ablate-write layer=1 tokens=40'];
    const gpu = await run(...base, '--backend', 'webgpu', '--out', outFile('ablated-gpu.safetensors'));
    assert.equal(gpu.code, 0, gpu.err);
    assert.match(gpu.out, /intervene ablate-write layer=1 tokens=40/);
    assert.equal((await run(...base, '--out', outFile('ablated-ref.safetensors'))).code, 0);
    const clean = await run(...base.slice(0, -2), '--out', outFile('clean-ref.safetensors'));
    assert.equal(clean.code, 0, clean.err);
    const [a, b, c] = await Promise.all(['ablated-gpu', 'ablated-ref', 'clean-ref'].map((n) => openSafetensors(outFile(`${n}.safetensors`))));
    assert.equal(a.metadata.interventions, JSON.stringify(['ablate-write layer=1 tokens=40']));
    const [x, y, z] = await Promise.all([a, b, c].map((d) => d.readFloat('logits', 'float64')));
    const V = y.shape[1];
    // The ablation moves the logits after token 40 by more than the tolerance: the comparison sees it.
    const moved = y.data.subarray(40 * V).reduce((m, v, i) => Math.max(m, Math.abs(v - z.data[40 * V + i])), 0);
    assert.ok(moved > 0.05, `the ablation moves the logits by ${moved}`);
    const worst = y.data.reduce((w, v, i) => Math.max(w, Math.abs(x.data[i] - v) - (2e-3 + 6e-4 * Math.abs(v))), -Infinity);
    assert.ok(worst <= 0, `logits: ${worst} past the tolerance`);

    // patch-state from a dump of the clean run's states after token 20, into a run of other tokens.
    const source = outFile('states-20.safetensors');
    assert.equal((await run(...base.slice(0, -2), '--states-at', '20', '--out', source)).code, 0);
    const corrupted = ['inspect', '--model', fixture('mamba1-tiny'), '--ids', Array.from({ length: 30 }, (_, i) => (i * 7 + 3) % 1000).join(','), '--intervene', `patch-state layer=1 token=20 from=${source}`];
    const patched = await run(...corrupted, '--backend', 'webgpu', '--out', outFile('patched-gpu.safetensors'));
    assert.equal(patched.code, 0, patched.err);
    assert.equal((await run(...corrupted, '--out', outFile('patched-ref.safetensors'))).code, 0);
    const [p, q] = await Promise.all(['patched-gpu', 'patched-ref'].map(async (n) => (await openSafetensors(outFile(`${n}.safetensors`))).readFloat('logits', 'float64')));
    const off = q.data.reduce((w, v, i) => Math.max(w, Math.abs(p.data[i] - v) - (2e-3 + 6e-4 * Math.abs(v))), -Infinity);
    assert.ok(off <= 0, `patched logits: ${off} past the tolerance`);
  });
});
