/**
 * `mamba-scope sweep --backend webgpu`: the batched sweep of the native WebGPU engine (Dawn +
 * SwiftShader here) through the CLI writes the map the float64 sweep computes (ablationSweep,
 * one reference forward per cell: the oracle, its cells checked by hand in cli.test.ts) within
 * webgpuSweep.test.ts's bound: every cell within 1e-3 of the largest, for mean KL and mean Δloss.
 * Progress is drawn with an ETA on a terminal, as the other long commands draw it.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main';
import type { CommandIO } from '../../src/cli/command';
import { ablationSweep } from '../../src/engine/analysis/sweep';
import { isLanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { NodeFolderStore } from '../../src/node/files';
import { fixture, openSafetensors } from './fixtures';

const BOUND = 1e-3;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'mamba-scope-sweep-'));

/** The CLI in-process, as on a terminal (so progress lines are drawn). */
async function run(...argv: string[]) {
  const out: string[] = [], err: string[] = [], progress: string[] = [];
  const io: CommandIO = { out: (s) => out.push(s), err: (s) => err.push(s), progress: (s) => progress.push(s) };
  const code = await main(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n'), progress };
}

describe('cli sweep --backend webgpu', function () {
  this.timeout(300_000);

  it('mamba1-tiny: the map is the float64 sweep\'s within 1e-3 of its largest cell, with progress and an ETA', async () => {
    const ids = Array.from({ length: 24 }, (_, i) => (i * 31 + 5) % 1000);
    const tokens = [0, 3, 7, 8, 15, 22, 23];
    const file = path.join(tmp, 'webgpu.safetensors');
    const r = await run('sweep', '--model', fixture('mamba1-tiny'), '--ids', ids.join(','), '--tokens', tokens.join(','), '--out', file, '--backend', 'webgpu');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /swept +2 layers × 7 tokens \(ablate-write\), 14 cells batched on webgpu \(fp32\)/);
    assert.match(r.out, /^layer 1 +token \d+ +mean KL \d\.\d{3}e[-+]\d+ +mean Δloss /m);
    assert.ok(r.progress.some((l) => /^sweep: sweep \d+\/14 \(\d+ %\), .* elapsed, ETA /.test(l)), r.progress.join('\n'));
    assert.equal(r.progress.at(-1), '', 'the status line is cleared at the end');

    const d = await openSafetensors(file);
    assert.equal(d.metadata.backend, 'webgpu');
    assert.deepEqual([...((await d.readNative('sweep.layers')).data as Int32Array)], [0, 1]);
    assert.deepEqual([...((await d.readNative('sweep.tokens')).data as Int32Array)], tokens);
    const m64 = await loadModelFolder(new NodeFolderStore(fixture('mamba1-tiny')), 'float64');
    if (!isLanguageModel(m64)) throw new Error('a language model fixture');
    const ref = ablationSweep(m64, ids, { layers: [0, 1], tokens });
    for (const [key, want] of [['sweep.mean_kl', ref.meanKl], ['sweep.mean_dloss', ref.meanDLoss]] as const) {
      assert.deepEqual(d.info(key)?.shape, [2, tokens.length]);
      const got = (await d.readFloat(key, 'float64')).data;
      const scale = Math.max(...want.map(Math.abs));
      assert.ok(scale > 1e-3, `${key}: the sweep moves the outputs (largest ${scale})`);
      const worst = Math.max(...want.map((w, k) => Math.abs(got[k] - w) / scale));
      console.log(`      ${key}: max |err| / max |ref| ${worst.toExponential(2)}`);
      assert.ok(worst <= BOUND, `${key}: max |err| / max |ref| = ${worst}`);
    }
  });

  it('refuses a layer without a scan in one line, before any device work', async () => {
    const r = await run('sweep', '--model', fixture('families', 'jamba'), '--ids', '1,2,3', '--layers', '2', '--out', path.join(tmp, 'no.safetensors'), '--backend', 'webgpu');
    assert.equal(r.code, 1);
    assert.match(r.err, /^mamba-scope sweep: layer 2: is a .* without a selective scan: choose a Mamba layer$/);
  });
});
