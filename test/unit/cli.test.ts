/**
 * The CLI as a user runs it: dumps with the fixtures' key names and values, the bundled model as
 * the default, and exit codes 2 (usage) / 1 (bad input, one line naming the file) without traces.
 */
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main';
import { normalizedError } from '../../src/engine/tensor';
import type { LanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import type { F64 } from '../../src/engine/reference/ops';
import { NodeFolderStore } from '../../src/node/files';
import { encodeSafetensors } from '../../src/engine/formats/safetensors';
import { writeDump } from '../../src/cli/modelArgs';
import { BUILT_CLI, buildCli } from './buildCli';
import { lastLayerAblated, meanKl } from './handAblation';
import { fixture, openSafetensors } from './fixtures';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mamba-scope-cli-'));
const outFile = (name: string) => path.join(tmp, name);

describe('cli inspect', function () {
  this.timeout(120_000);

  it('writes a mamba-dump/1 with the fixtures\' key names, values within 1e-5 in fp64', async () => {
    const r = await run('inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample1.py'), '--out', outFile('a.safetensors'), '--states-at', '0,57,-1');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /tokens +233/);
    assert.match(r.out, /layer 0 +Mamba-1 mixer +mean Δ/);
    const dump = await openSafetensors(outFile('a.safetensors'));
    const golden = await openSafetensors(fixture('dumps', 'mamba1-sample1.safetensors'));
    const perLayer = ['hidden_in', 'z', 'u', 'delta', 'B', 'C', 'y', 'h', 'conv_state', 'h_tokens', 'out', 'hidden_out'];
    assert.deepEqual(dump.names().sort(), ['input_ids', 'logits', ...[0, 1].flatMap((i) => perLayer.map((n) => `layers.${i}.${n}`))].sort());
    assert.deepEqual(dump.info('input_ids')?.dtype, 'I32');
    assert.deepEqual([...((await dump.readNative('input_ids')).data as Int32Array)], [...((await golden.readNative('input_ids')).data as Int32Array)]);
    assert.deepEqual(JSON.parse(dump.metadata.tokens), JSON.parse(golden.metadata.tokens));
    assert.equal(dump.metadata.format, 'mamba-dump/1');
    assert.deepEqual([...((await dump.readNative('layers.1.h_tokens')).data as Int32Array)], [0, 57, 232]);
    for (const n of ['z', 'u', 'delta', 'B', 'C', 'y']) {
      const e = normalizedError((await dump.readFloat(`layers.1.${n}`, 'float64')).data, (await golden.readFloat(`layers.1.${n}`, 'float64')).data);
      assert.ok(e < 1e-5, `${n}: ${e}`);
    }
    assert.ok(normalizedError((await dump.readFloat('logits', 'float64')).data, (await golden.readFloat('hf_logits', 'float64')).data) < 1e-5);
  });

  it('saves the states asked for by --states-at in any order, repeated or negative, as the golden dump has them', async () => {
    const golden = await openSafetensors(fixture('dumps', 'mamba1-sample1.safetensors'));
    const goldenTokens = [...((await golden.readNative('layers.1.h_tokens')).data as Int32Array)];
    const goldenH = (await golden.readFloat('layers.1.h', 'float64')).data;
    const size = goldenH.length / goldenTokens.length;
    const goldenState = (t: number) => goldenH.subarray(goldenTokens.indexOf(t) * size, (goldenTokens.indexOf(t) + 1) * size);
    for (const [statesAt, tokens] of [['116,0', [0, 116]], ['0,116', [0, 116]], ['-1,116,0,116', [0, 116, 232]]] as const) {
      const file = outFile(`states-${statesAt}.safetensors`);
      const r = await run('inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample1.py'), '--out', file, '--layers', '1', '--states-at', statesAt);
      assert.equal(r.code, 0, r.err);
      const dump = await openSafetensors(file);
      // The dump stores its states sorted and distinct, h_tokens naming the token of each row.
      assert.deepEqual([...((await dump.readNative('layers.1.h_tokens')).data as Int32Array)], tokens);
      const h = (await dump.readFloat('layers.1.h', 'float64')).data;
      tokens.forEach((t, k) => {
        const e = normalizedError(h.subarray(k * size, (k + 1) * size), goldenState(t));
        assert.ok(e < 1e-5, `--states-at ${statesAt}: state after ${t}: ${e}`);
      });
    }
  });

  it('adds the implicit attention with --attention, within 1e-5 of the fixtures', async () => {
    const r = await run('inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample1.py'), '--out', outFile('att.safetensors'), '--layers', '1', '--attention');
    assert.equal(r.code, 0, r.err);
    const dump = await openSafetensors(outFile('att.safetensors'));
    const golden = await openSafetensors(fixture('dumps', 'mamba1-sample1.safetensors'));
    assert.equal(dump.info('layers.0.delta'), undefined, 'only the requested layer is written');
    const e = normalizedError((await dump.readFloat('layers.1.hidden_attention', 'float64')).data, (await golden.readFloat('layers.1.hidden_attention', 'float64')).data);
    assert.ok(e < 1e-5, String(e));
  });

  it('runs fp32 on tfjs within 1e-3, and Mamba-2 from --ids', async () => {
    const r = await run('inspect', '--model', fixture('mamba2-tiny'), '--ids', '1,2,3,4,5,6,7', '--out', outFile('m2.safetensors'), '--precision', 'fp32', '--backend', 'cpu');
    assert.equal(r.code, 0, r.err);
    const dump = await openSafetensors(outFile('m2.safetensors'));
    for (const key of ['logits', 'layers.0.out', 'layers.1.hidden_out', 'layers.0.delta']) assert.ok(dump.info(key), key);
    const ref = await run('inspect', '--model', fixture('mamba2-tiny'), '--ids', '1,2,3,4,5,6,7', '--out', outFile('m2-64.safetensors'));
    const dump64 = await openSafetensors(outFile('m2-64.safetensors'));
    assert.equal(ref.code, 0);
    assert.ok(normalizedError((await dump.readFloat('logits', 'float64')).data, (await dump64.readFloat('logits', 'float64')).data) < 1e-3);
  });

  it('runs --backend webgpu on the native WebGPU forward (Dawn): every key of the fp64 dump, each within mamba_ssm\'s fp32 tolerance', async () => {
    const args = ['inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample1.py'), '--max-tokens', '24', '--states-at', '0,-1'];
    const r = await run(...args, '--out', outFile('gpu.safetensors'), '--backend', 'webgpu');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /backend +webgpu \(fp32, f32 weights\)/);
    assert.equal((await run(...args, '--out', outFile('gpu-64.safetensors'))).code, 0);
    const [gpu, ref] = [await openSafetensors(outFile('gpu.safetensors')), await openSafetensors(outFile('gpu-64.safetensors'))];
    const floats = ref.names().filter((k) => ref.info(k)!.dtype === 'F64');
    assert.ok(floats.includes('logits') && floats.includes('layers.1.h') && floats.includes('layers.0.out'), floats.join(' '));
    // conv_state (patch-state's source) is the float64 reference's alone.
    for (const key of ref.names().filter((k) => !k.endsWith('.conv_state'))) {
      assert.deepEqual(gpu.info(key)?.shape, ref.info(key)!.shape, key);
      if (!floats.includes(key)) continue;
      const [a, b] = [(await gpu.readFloat(key, 'float64')).data, (await ref.readFloat(key, 'float64')).data];
      const worst = b.reduce((w, v, i) => Math.max(w, Math.abs(a[i] - v) - (2e-3 + 6e-4 * Math.abs(v))), -Infinity);
      assert.ok(worst <= 0, `${key}: ${worst} past the tolerance`);
    }
  });

  it('--norm picks whose Mamba-2 gated norm runs (mamba_ssm per group by default, transformers over d_inner) and records it', async () => {
    const golden = await openSafetensors(fixture('families', 'mamba2_groups', 'dump.safetensors'));
    const ids = [...((await golden.readNative('input_ids')).data as Int32Array)].join(',');
    for (const [norm, key] of [[undefined, 'grouped_logits'], ['transformers', 'hf_logits']] as const) {
      const file = outFile(`groups-${norm ?? 'default'}.safetensors`);
      const r = await run('inspect', '--model', fixture('families', 'mamba2_groups'), '--ids', ids, '--out', file, '--layers', '0', ...(norm ? ['--norm', norm] : []));
      assert.equal(r.code, 0, r.err);
      const dump = await openSafetensors(file);
      assert.equal(dump.metadata.gated_norm, norm ?? 'mamba_ssm');
      const e = normalizedError((await dump.readFloat('logits', 'float64')).data, (await golden.readFloat(key, 'float64')).data);
      assert.ok(e < 1e-5, `${key}: ${e}`);
    }
    assert.equal((await run('inspect', '--ids', '1', '--out', 'o', '--norm', 'hf')).code, 2);
  });

  it('--positions runs the long mode: logits at those positions, the loss everywhere and the final states, as the full run has them', async () => {
    const base = ['inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample1.py')];
    const full = await run(...base, '--out', outFile('full.safetensors'), '--states-at', '-1');
    assert.equal(full.code, 0, full.err);
    const long = await run(...base, '--out', outFile('long.safetensors'), '--positions', '0:200:50,-1');
    assert.equal(long.code, 0, long.err);
    assert.match(long.out, /loss +\d+\.\d+ nats\/token \(mean over 232 positions\)/);
    const [a, b] = [await openSafetensors(outFile('full.safetensors')), await openSafetensors(outFile('long.safetensors'))];
    assert.equal(b.metadata.mode, 'long');
    assert.deepEqual([...((await b.readNative('positions')).data as Int32Array)], [0, 50, 100, 150, 232]);
    const logits = (await a.readFloat('logits', 'float64')) as { shape: number[]; data: Float64Array };
    const V = logits.shape[1];
    const rows = [0, 50, 100, 150, 232].flatMap((t) => [...logits.data.subarray(t * V, (t + 1) * V)]);
    assert.deepEqual([...(await b.readFloat('logits', 'float64')).data], rows);
    const ids = (await a.readNative('input_ids')).data as Int32Array;
    const nll = (await b.readFloat('nll', 'float64')).data;
    for (const t of [0, 117, 231]) {
      const row = logits.data.subarray(t * V, (t + 1) * V);
      const m = Math.max(...row);
      const want = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[ids[t + 1]];
      assert.ok(Math.abs(nll[t] - want) < 1e-12, `nll at ${t}: ${nll[t]} vs ${want}`);
    }
    for (const i of [0, 1]) assert.deepEqual((await b.readFloat(`layers.${i}.h`, 'float64')).data, (await a.readFloat(`layers.${i}.h`, 'float64')).data);
    assert.deepEqual((await b.readNative('layers.1.conv_state')).shape, [1, 3, 256]);
    assert.equal(b.info('layers.0.delta'), undefined, 'no per-token internals in the long mode');
    const bad = await run(...base, '--out', outFile('bad.safetensors'), '--positions', '0:5000:0');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--positions: (step "0" is not a positive integer|5000 is outside)/);
  });

  it('--positions prints the loss against position, per 512 tokens: the means of the dump\'s own nll', async () => {
    const ids = Array.from({ length: 1300 }, (_, i) => (i * 37 + 11) % 1000).join(',');
    const long = await run('inspect', '--model', fixture('mamba1-tiny'), '--ids', ids, '--out', outFile('long-1300.safetensors'), '--positions', '-1');
    assert.equal(long.code, 0, long.err);
    const nll = (await (await openSafetensors(outFile('long-1300.safetensors'))).readFloat('nll', 'float64')).data;
    const mean = (a: number, b: number) => nll.subarray(a, b).reduce((s, v) => s + v, 0) / (b - a);
    const buckets = [[0, 512], [512, 1024], [1024, 1299]].map(([a, b]) => ({ start: a, mean: mean(a, b) }));
    const f = (b: { start: number; mean: number }) => `${b.mean.toFixed(4)} at ${b.start}`;
    const low = buckets.reduce((a, b) => (b.mean < a.mean ? b : a)), high = buckets.reduce((a, b) => (b.mean > a.mean ? b : a));
    const line = long.out.split('\n').find((l) => l.trim().startsWith('per 512 tokens'));
    assert.equal(line?.trim(), `per 512 tokens ${f(buckets[0])} → ${f(buckets[2])} (lowest ${f(low)}, highest ${f(high)}; 3 buckets)`);
  });

  it('--positions --backend wasm runs the long mode in fp32: the logits, loss and final states of the full wasm run', async () => {
    const base = ['inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample1.py'), '--backend', 'wasm'];
    const full = await run(...base, '--out', outFile('full-wasm.safetensors'), '--states-at', '-1');
    assert.equal(full.code, 0, full.err);
    const long = await run(...base, '--out', outFile('long-wasm.safetensors'), '--positions', '0:200:50,-1');
    assert.equal(long.code, 0, long.err);
    const [a, b] = [await openSafetensors(outFile('full-wasm.safetensors')), await openSafetensors(outFile('long-wasm.safetensors'))];
    assert.equal(b.metadata.dtype, 'float32');
    const logits = await a.readFloat('logits', 'float64');
    const V = logits.shape[1];
    assert.deepEqual([...(await b.readFloat('logits', 'float64')).data], [0, 50, 100, 150, 232].flatMap((t) => [...logits.data.subarray(t * V, (t + 1) * V)]));
    const ids = (await a.readNative('input_ids')).data as Int32Array;
    const nll = (await b.readFloat('nll', 'float64')).data;
    const row = logits.data.subarray(117 * V, 118 * V);
    const m = Math.max(...row);
    assert.ok(Math.abs(nll[117] - (m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[ids[118]])) < 1e-9);
    for (const i of [0, 1]) {
      assert.deepEqual((await b.readFloat(`layers.${i}.h`, 'float64')).data, (await a.readFloat(`layers.${i}.h`, 'float64')).data);
      assert.deepEqual((await b.readFloat(`layers.${i}.conv_state`, 'float64')).data, (await a.readFloat(`layers.${i}.conv_state`, 'float64')).data);
    }
  });

  it('writes dumps piece by piece, byte for byte the file encodeSafetensors makes in one buffer', async () => {
    const entries = [
      { name: 'a', tensor: { shape: [3], data: Float64Array.of(1, 2, 3) } },
      { name: 'b.odd', tensor: { shape: [1, 3], data: Int32Array.of(7, 8, 9) } },
      { name: 'c', tensor: { shape: [1], data: new Float32Array([0.5, -1]).subarray(1) } },
    ];
    await writeDump(outFile('pieces.safetensors'), entries, { format: 'mamba-dump/1' });
    assert.deepEqual(new Uint8Array(readFileSync(outFile('pieces.safetensors'))), encodeSafetensors(entries, { format: 'mamba-dump/1' }));
    await assert.rejects(writeDump(path.join(tmp, 'no', 'such', 'dir', 'x.safetensors'), entries, {}), /x\.safetensors: cannot be written/);
  });

  it('--intervene "ablate-write layer=1 tokens=40": nothing changes before token 40, and after it the logits are an independent recomputation; effect measures it', async () => {
    const base = ['inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample1.py'), '--max-tokens', '80'];
    assert.equal((await run(...base, '--out', outFile('clean.safetensors'))).code, 0);
    const r = await run(...base, '--out', outFile('ablated.safetensors'), '--intervene', 'ablate-write layer=1 tokens=40');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /intervene ablate-write layer=1 tokens=40/);
    const [clean, ablated] = [await openSafetensors(outFile('clean.safetensors')), await openSafetensors(outFile('ablated.safetensors'))];
    assert.equal(ablated.metadata.interventions, JSON.stringify(['ablate-write layer=1 tokens=40']));
    const logits = (d: typeof clean) => d.readFloat('logits', 'float64');
    const [a, b] = [await logits(clean), await logits(ablated)];
    const V = a.shape[1];
    const ids80 = (await clean.readNative('input_ids')).data as Int32Array;
    assert.deepEqual(b.data.subarray(0, 40 * V), a.data.subarray(0, 40 * V), 'logits before token 40');
    // Independently: layer 1's scan with token 40's write (B_40) zeroed, then its gate, out_proj, residual, final norm and lm_head.
    const model = await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float64');
    const want = lastLayerAblated(model as LanguageModel<'float64'>, referenceForward(model, ids80), 40);
    assert.ok(normalizedError(b.data, want.data) < 1e-9, `logits: ${normalizedError(b.data, want.data)}`);
    const e = await run('effect', outFile('clean.safetensors'), outFile('ablated.safetensors'), '--json', '--target', '7');
    assert.equal(e.code, 0, e.err);
    const json = JSON.parse(e.out) as { firstChanged: number; kl: number[]; dLoss: number[]; target: { clean: number[] } };
    assert.equal(json.firstChanged, 40);
    assert.ok(json.kl.slice(0, 40).every((v) => v === 0) && json.kl[40] > 0);
    assert.equal(json.dLoss.length, 79);
    const text = await run('effect', outFile('clean.safetensors'), outFile('ablated.safetensors'));
    assert.match(text.out, /first change at position 40 \(of 80\)/);
    assert.equal((await run(...base, '--out', outFile('x.safetensors'), '--intervene', 'ablate-write layer=9 tokens=1')).code, 1);
  });

  it('--intervene "patch-state …from=DUMP": a run of other tokens continues from the dump\'s state (--states-at writes conv_state beside h); a dump without the token is refused in one line', async () => {
    const cleanDump = outFile('patch-source.safetensors');
    const source = await run('inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample1.py'), '--max-tokens', '40', '--states-at', '5,20', '--out', cleanDump);
    assert.equal(source.code, 0, source.err);
    const d = await openSafetensors(cleanDump);
    assert.deepEqual(d.info('layers.1.conv_state')?.shape, [2, 3, 256]);
    const corrupted = ['inspect', '--model', fixture('mamba1-tiny'), '--ids', Array.from({ length: 30 }, (_, i) => (i * 7 + 3) % 1000).join(',')];
    const r = await run(...corrupted, '--out', outFile('patched.safetensors'), '--intervene', `patch-state layer=1 token=20 from=${cleanDump}`);
    assert.equal(r.code, 0, r.err);
    const patched = await openSafetensors(outFile('patched.safetensors'));
    assert.equal(patched.metadata.interventions, JSON.stringify([`patch-state layer=1 token=20 from=${cleanDump}`]));
    // The patched layer's y from token 21 on is the patch test's business (interventions.patch.test.ts); here: it moved, and only from 20 on.
    const plain = await run(...corrupted, '--out', outFile('unpatched.safetensors'));
    assert.equal(plain.code, 0, plain.err);
    const [y0, y1] = [await (await openSafetensors(outFile('unpatched.safetensors'))).readFloat('layers.1.y', 'float64'), await patched.readFloat('layers.1.y', 'float64')];
    assert.deepEqual(y1.data.subarray(0, 20 * 256), y0.data.subarray(0, 20 * 256));
    assert.ok(normalizedError(y1.data.subarray(20 * 256), y0.data.subarray(20 * 256)) > 1e-3);
    const bad = await run(...corrupted, '--out', outFile('x.safetensors'), '--intervene', `patch-state layer=1 token=7 from=${cleanDump}`);
    assert.equal(bad.code, 1);
    assert.equal(bad.err, `mamba-scope inspect: ${cleanDump}: holds layer 1's state after tokens 5, 20, not after token 7: write it with the float64 reference's inspect --states-at 7`);
  });

  it('--logit-lens: each layer\'s stream through the final norm and lm_head; at the last layer it is the model\'s own next-token distribution', async () => {
    const r = await run('inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample1.py'), '--max-tokens', '30', '--out', outFile('lens.safetensors'), '--logit-lens');
    assert.equal(r.code, 0, r.err);
    const d = await openSafetensors(outFile('lens.safetensors'));
    const logits = await d.readFloat('logits', 'float64');
    const ids = (await d.readNative('input_ids')).data as Int32Array;
    const V = logits.shape[1];
    const lensIds = (await d.readNative('layers.1.lens_ids')).data as Int32Array;
    const nextProb = (await d.readFloat('layers.1.lens_next_prob', 'float64')).data;
    for (const t of [0, 13, 28]) {
      const row = [...logits.data.subarray(t * V, (t + 1) * V)];
      const order = row.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, i]) => i);
      assert.deepEqual([...lensIds.subarray(t * 5, t * 5 + 5)], order.slice(0, 5), `top 5 at ${t}`);
      const m = Math.max(...row);
      const p = Math.exp(row[ids[t + 1]] - m) / row.reduce((s, v) => s + Math.exp(v - m), 0);
      assert.ok(Math.abs(nextProb[t] - p) < 1e-6, `next-token probability at ${t}`);
    }
    assert.deepEqual(d.info('layers.0.lens_probs')?.shape, [30, 5]);
    assert.notDeepEqual([...((await d.readNative('layers.0.lens_ids')).data as Int32Array)], [...lensIds], 'layer 0 reads differently');
  });

  it('sweep: the layers × tokens ablation map; a cell of the last layer is the KL of an independent recomputation', async () => {
    const ids = Array.from({ length: 24 }, (_, i) => (i * 31 + 5) % 1000);
    const r = await run('sweep', '--model', fixture('mamba1-tiny'), '--ids', ids.join(','), '--out', outFile('sweep.safetensors'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /swept +2 layers × 24 tokens \(ablate-write\), 48 forwards/);
    const d = await openSafetensors(outFile('sweep.safetensors'));
    const kl = (await d.readFloat('sweep.mean_kl', 'float64')).data;
    assert.deepEqual(d.info('sweep.mean_kl')?.shape, [2, 24]);
    assert.ok(kl.every((v) => v >= 0) && kl.some((v) => v > 0));
    // Layer 1 is the last: ablating token s there is its scan with B_s zeroed, then out_proj, the norm and lm_head.
    const model = await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float64');
    const clean = referenceForward(model, ids);
    for (const s of [5, 20]) {
      const want = meanKl(clean.logits! as F64, lastLayerAblated(model as LanguageModel<'float64'>, clean, s), s);
      assert.ok(Math.abs(kl[24 + s] - want) <= 1e-9 * Math.max(1e-12, want) + 1e-15, `layer 1 token ${s}: ${kl[24 + s]} vs ${want}`);
    }
  });

  it('uses the bundled model without --model and truncates with --max-tokens', async () => {
    const r = await run('inspect', '--text', fixture('samples', 'sample2.py'), '--out', outFile('demo.safetensors'), '--max-tokens', '40', '--layers', '0');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /mamba1-demo \(mamba1, 4 layers, d_model 256\)/);
    assert.match(r.err, /keeping the first 40/);
    assert.deepEqual((await openSafetensors(outFile('demo.safetensors'))).info('layers.0.u')?.shape, [40, 512]);
  });

  it('takes a weights file as --model, with config.json beside it', async () => {
    const r = await run('inspect', '--model', fixture('mamba1-tiny', 'model.safetensors'), '--ids', '1,2,3', '--out', outFile('file.safetensors'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /mamba1, 2 layers/);
  });

  it('refuses, before any work, a run whose kept tensors exceed --max-memory, saying how to raise it', async () => {
    const r = await run('inspect', '--model', fixture('mamba1-tiny'), '--text', fixture('samples', 'sample3.py'), '--out', outFile('big.safetensors'), '--attention', '--max-memory', '5');
    assert.equal(r.code, 1);
    assert.match(r.err, /kept tensors \d+ MB \(2 layers' internals for \d+ tokens, their attention, the logits\): \d+ MB, over the --max-memory limit of 5 MB: keep fewer layers \(--layers\), fewer tokens \(--max-tokens\), or raise --max-memory/);
  });

  it('streams the layers from the checkpoint when the weights exceed --max-memory but one layer fits, with the same dump as a resident run', async () => {
    // The demo model in float64: 8.4 MB of backbone, 3.5 MB per layer, 22.5 MB in all.
    const args = ['inspect', '--model', path.join(__dirname, '..', '..', 'assets', 'mamba1-demo'), '--ids', '5,17,300,9,41,7,2,99', '--states-at', '-1'];
    const resident = await run(...args, '--out', outFile('resident.safetensors'), '--max-memory', '40');
    assert.equal(resident.code, 0, resident.err);
    assert.doesNotMatch(resident.err, /streamed|one at a time/);
    const streamed = await run(...args, '--out', outFile('streamed.safetensors'), '--max-memory', '16');
    assert.equal(streamed.code, 0, streamed.err);
    assert.match(streamed.err, /in float64\) do not fit --max-memory: the layers are read from the checkpoint one at a time/);
    assert.match(streamed.out, /layers streamed from disk/);
    const [a, b] = [await openSafetensors(outFile('resident.safetensors')), await openSafetensors(outFile('streamed.safetensors'))];
    assert.equal(b.metadata.weights, 'streamed');
    assert.deepEqual(b.names(), a.names());
    for (const key of a.names()) assert.deepEqual((await b.readNative(key)).data, (await a.readNative(key)).data, key);
  });

  it('streams the layers on wasm and webgpu too when the weights exceed --max-memory, with the same dump as a resident run', async () => {
    // The demo model in float32: 4.2 MB of backbone, 1.75 MB per layer, 11.2 MB in all.
    const args = ['inspect', '--model', path.join(__dirname, '..', '..', 'assets', 'mamba1-demo'), '--ids', '5,17,300,9,41,7,2,99', '--backend', 'wasm'];
    const resident = await run(...args, '--out', outFile('wasm-resident.safetensors'), '--max-memory', '40');
    assert.equal(resident.code, 0, resident.err);
    const streamed = await run(...args, '--out', outFile('wasm-streamed.safetensors'), '--max-memory', '9');
    assert.equal(streamed.code, 0, streamed.err);
    assert.match(streamed.err, /in float32\) do not fit --max-memory or the wasm heap: the layers are read/);
    const [a, b] = [await openSafetensors(outFile('wasm-resident.safetensors')), await openSafetensors(outFile('wasm-streamed.safetensors'))];
    assert.equal(b.metadata.weights, 'streamed');
    for (const key of a.names()) assert.deepEqual((await b.readNative(key)).data, (await a.readNative(key)).data, key);
    const gpuArgs = [...args.slice(0, -1), 'webgpu'];
    const gpuResident = await run(...gpuArgs, '--out', outFile('gpu-resident.safetensors'), '--max-memory', '40');
    assert.equal(gpuResident.code, 0, gpuResident.err);
    const gpuStreamed = await run(...gpuArgs, '--out', outFile('gpu-streamed.safetensors'), '--max-memory', '9');
    assert.equal(gpuStreamed.code, 0, gpuStreamed.err);
    assert.match(gpuStreamed.err, /the layers are read from the checkpoint one at a time, into GPU memory/);
    const [c, d] = [await openSafetensors(outFile('gpu-resident.safetensors')), await openSafetensors(outFile('gpu-streamed.safetensors'))];
    for (const key of c.names()) assert.deepEqual((await d.readNative(key)).data, (await c.readNative(key)).data, key);
  });

  it('inspects a hybrid (Jamba): each layer named by its kind, its paths in the dump; on wasm and the native WebGPU engine within fp32 tolerance', async () => {
    const args = ['inspect', '--model', fixture('families', 'jamba'), '--ids', '5,17,300,9,41,7,2,99', '--states-at', '-1'];
    const r = await run(...args, '--out', outFile('jamba.safetensors'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /model +\S+ \(jamba, 4 layers, d_model 64\)/);
    assert.match(r.out, /layer 1 +Mamba-1 \+ MoE +mean Δ [\d.]+ +‖out‖ ssm [\d.e-]+, mlp [\d.e-]+/);
    assert.match(r.out, /layer 2 +attention \+ MLP +‖out‖ attention [\d.e-]+, mlp [\d.e-]+/);
    const dump = await openSafetensors(outFile('jamba.safetensors'));
    assert.equal(dump.metadata.arch, 'jamba');
    assert.deepEqual(dump.info('layers.1.moe_experts')?.shape, [8, 2]);
    assert.deepEqual(dump.info('layers.1.h')?.shape, [1, 128, 16]);
    assert.ok(dump.info('layers.2.attn_out') && !dump.info('layers.2.delta') && !dump.info('layers.2.h'), 'the attention layer has no scan internals');
    for (const i of [0, 1, 2, 3]) assert.ok(dump.info(`layers.${i}.out`) && dump.info(`layers.${i}.hidden_out`) && dump.info(`layers.${i}.mlp_out`), `layer ${i}`);
    const wasm = await run(...args, '--backend', 'wasm', '--out', outFile('jamba-wasm.safetensors'));
    assert.equal(wasm.code, 0, wasm.err);
    const fp32 = await openSafetensors(outFile('jamba-wasm.safetensors'));
    for (const key of ['logits', 'layers.1.ssm_out', 'layers.2.attn_out', 'layers.3.mlp_out', 'layers.3.hidden_out']) {
      const e = normalizedError((await fp32.readFloat(key, 'float64')).data, (await dump.readFloat(key, 'float64')).data);
      assert.ok(e < 1e-5, `${key}: ${e}`);
    }
    // --attention: the attention layer's own pattern, against softmax(q·kᵀ/4) of transformers' own q and k (Jamba has no RoPE; kv head ⌊h/2⌋).
    const withPattern = await run('inspect', '--model', fixture('families', 'jamba'), '--ids', '5,17,300,9,41,7,2,99', '--attention', '--out', outFile('jamba-attn.safetensors'));
    assert.equal(withPattern.code, 0, withPattern.err);
    const pattern = await (await openSafetensors(outFile('jamba-attn.safetensors'))).readFloat('layers.2.attn_pattern', 'float64');
    assert.deepEqual(pattern.shape, [8, 4, 8]);
    const golden = await openSafetensors(fixture('families', 'jamba', 'dump.safetensors'));
    const goldenIds = Array.from((await golden.readNative('input_ids')).data as Int32Array).slice(0, 8).join(',');
    const own = await run('inspect', '--model', fixture('families', 'jamba'), '--ids', goldenIds, '--attention', '--out', outFile('jamba-attn-golden.safetensors'));
    assert.equal(own.code, 0, own.err);
    const ownPattern = await (await openSafetensors(outFile('jamba-attn-golden.safetensors'))).readFloat('layers.2.attn_pattern', 'float64');
    const [q, k] = [await golden.readFloat('layers.2.self_attn.q_proj', 'float64'), await golden.readFloat('layers.2.self_attn.k_proj', 'float64')];
    let worst = 0;
    for (let t = 0; t < 8; t++) {
      for (let h = 0; h < 4; h++) {
        const scores = Array.from({ length: t + 1 }, (_, s) => {
          let dot = 0;
          for (let i = 0; i < 16; i++) dot += q.data[t * 64 + h * 16 + i] * k.data[s * 32 + Math.floor(h / 2) * 16 + i];
          return dot / 4;
        });
        const max = Math.max(...scores);
        const sum = scores.reduce((a, x) => a + Math.exp(x - max), 0);
        for (let s = 0; s < 8; s++) worst = Math.max(worst, Math.abs(ownPattern.data[t * 32 + h * 8 + s] - (s <= t ? Math.exp(scores[s] - max) / sum : 0)));
      }
    }
    assert.ok(worst < 1e-6, `attention pattern off by ${worst}`);
    // The native engine (SwiftShader here): the same paths, and the attention pattern, as the float64 run.
    const gpu = await run(...args, '--backend', 'webgpu', '--attention', '--out', outFile('jamba-gpu.safetensors'));
    assert.equal(gpu.code, 0, gpu.err);
    const [native, reference] = [await openSafetensors(outFile('jamba-gpu.safetensors')), await openSafetensors(outFile('jamba-attn.safetensors'))];
    for (const key of ['logits', 'layers.1.ssm_out', 'layers.1.moe_weights', 'layers.2.attn_out', 'layers.2.attn_pattern', 'layers.3.mlp_out', 'layers.3.hidden_out']) {
      const e = normalizedError((await native.readFloat(key, 'float64')).data, (await reference.readFloat(key, 'float64')).data);
      assert.ok(e < 1e-4, `webgpu ${key}: ${e}`);
    }
    assert.deepEqual([...(await native.readFloat('layers.1.moe_experts', 'float64')).data], [...(await reference.readFloat('layers.1.moe_experts', 'float64')).data]);
    const long = await run('inspect', '--model', fixture('families', 'jamba'), '--ids', '5,17,300', '--positions', '-1', '--out', outFile('jamba-long.safetensors'));
    assert.equal(long.code, 2);
    assert.match(long.err, /jamba's attention layers have no fixed-size state/);
  });

  for (const [label, argv, pattern] of [
    ['no --out', ['inspect', '--ids', '1'], /--out is required/],
    ['both --text and --ids', ['inspect', '--ids', '1', '--text', 'x', '--out', 'o'], /exactly one of --text or --ids/],
    ['an unknown option', ['inspect', '--idz', '1'], /unknown option --idz/],
    ['fp64 on a tfjs backend', ['inspect', '--ids', '1', '--out', 'o', '--precision', 'fp64', '--backend', 'cpu'], /fp64 runs on the reference backend only/],
    ['f16 weights off the GPU', ['inspect', '--ids', '1', '--out', 'o', '--backend', 'wasm', '--gpu-weights', 'f16'], /--gpu-weights applies to --backend webgpu only/],
    ['states outside the sample', ['inspect', '--ids', '1,2', '--out', 'o', '--states-at', '5'], /--states-at 5 is outside the 2-token sample/],
  ] as const) {
    it(`exits 2 for ${label}`, async () => {
      const r = await run(...argv);
      assert.equal(r.code, 2);
      assert.match(r.err, pattern);
    });
  }

  it('exits 1 with one line naming the file for broken models, and 0 lines of stack', async () => {
    const broken = path.join(tmp, 'broken');
    mkdirSync(broken);
    writeFileSync(path.join(broken, 'config.json'), '{"model_type": "mamba", "hidden_size": 128');
    const truncated = path.join(tmp, 'truncated');
    mkdirSync(truncated);
    copyFileSync(fixture('mamba1-tiny', 'config.json'), path.join(truncated, 'config.json'));
    writeFileSync(path.join(truncated, 'model.safetensors'), readFileSync(fixture('mamba1-tiny', 'model.safetensors')).subarray(0, 5000));
    const empty = path.join(tmp, 'empty.py');
    writeFileSync(empty, '');
    const cases: [string[], RegExp][] = [
      [['--model', path.join(tmp, 'nope')], /nope: does not exist/],
      [['--model', broken], /broken\/config\.json: is not valid JSON/],
      [['--model', truncated], /truncated\/model\.safetensors: tensor ".*" ends at byte \d+ of the data area, which has only \d+ bytes/],
      [['--model', fixture('mamba1-tiny'), '--text', empty], /empty\.py: has no tokens/],
      [['--model', fixture('mamba1-tiny'), '--ids', '5000'], /token id 5000 is outside the model's 1024-token vocabulary/],
    ];
    for (const [args, pattern] of cases) {
      const r = await run('inspect', ...(args.includes('--text') || args.includes('--ids') ? args : [...args, '--ids', '1']), '--out', outFile('x.safetensors'));
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, pattern);
      assert.equal(r.err.split('\n').length, 1, r.err);
    }
  });
});

describe('cli run-block', () => {
  it('reproduces the simplified block\'s y within 1e-5 (fp64) and 1e-3 (fp32)', async () => {
    for (const [precision, tol] of [['fp64', 1e-5], ['fp32', 1e-3]] as const) {
      const r = await run('run-block', '--block', fixture('seed-block', 'block.safetensors'), '--input', fixture('seed-block', 'io.safetensors'), '--out', outFile(`blk-${precision}.safetensors`), '--precision', precision);
      assert.equal(r.code, 0, r.err);
      const got = await openSafetensors(outFile(`blk-${precision}.safetensors`));
      const io = await openSafetensors(fixture('seed-block', 'io.safetensors'));
      for (const n of ['y', 'x_in', 'res', 'B', 'C', 'delta']) {
        assert.ok(normalizedError((await got.readFloat(n, 'float64')).data, (await io.readFloat(n, 'float64')).data) < tol, `${precision} ${n}`);
      }
      assert.ok(got.info('out'));
    }
  });

  it('names the input file when it has no x', async () => {
    const r = await run('run-block', '--block', fixture('seed-block', 'block.safetensors'), '--input', fixture('seed-block', 'block.safetensors'), '--out', outFile('z.safetensors'));
    assert.equal(r.code, 1);
    assert.match(r.err, /block\.safetensors: has no tensor "x"/);
  });
});

describe('dist/cli.js (built)', function () {
  this.timeout(120_000);
  const cli = BUILT_CLI;
  before(buildCli);

  it('runs as an executable and prints no stack trace for bad input', () => {
    const r = spawnSync(cli, ['inspect', '--model', '/nonexistent/model', '--ids', '1', '--out', outFile('q.safetensors')], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim(), 'mamba-scope inspect: /nonexistent/model: does not exist');
    assert.match(execFileSync(cli, ['help'], { encoding: 'utf8' }), /inspect +run a model on a text/);
  });

  for (const backend of ['cpu', 'wasm', 'webgpu']) {
    it(`runs fp32 on the bundled ${backend} backend (bundling keeps tfjs's registrations and loads Dawn at run time)`, () => {
      const r = spawnSync(cli, ['inspect', '--model', fixture('mamba1-tiny'), '--ids', '1,2,3', '--out', outFile(`dist-${backend}.safetensors`), '--backend', backend], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`backend +${backend} \\(fp32${backend === 'webgpu' ? ', f32 weights' : ''}\\)`));
    });
  }
});
