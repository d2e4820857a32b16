/**
 * No silent long runs (issue 11, item 5): every long command estimates its run and refuses one
 * over --max-seconds before doing it, draws progress with an ETA only on a terminal, and reports
 * the whole run's wall time. No test here times anything: the clock is injected or only compared.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CommandIO } from '../../src/cli/command';
import { main, processIO } from '../../src/cli/main';
import { RunBudget } from '../../src/cli/runBudget';
import { fixture } from './fixtures';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mamba-scope-budget-'));
const MODEL = fixture('mamba1-tiny');
const SAMPLE = fixture('samples', 'sample1.py');
const GOLDEN = fixture('dumps', 'mamba1-sample1.safetensors');

function capture(tty: boolean) {
  const out: string[] = [], err: string[] = [], progress: string[] = [];
  const io: CommandIO = { out: (s) => out.push(s), err: (s) => err.push(s), ...(tty ? { progress: (s: string) => progress.push(s) } : {}) };
  return { io, out, err, progress };
}

describe('run budget: estimate, limit, progress, time', function () {
  this.timeout(120_000);

  const commands: [string, string[]][] = [
    ['inspect', ['inspect', '--model', MODEL, '--text', SAMPLE, '--out', path.join(tmp, 'x.safetensors'), '--attention']],
    ['run-block', ['run-block', '--block', fixture('seed-block', 'block.safetensors'), '--input', fixture('seed-block', 'io.safetensors'), '--out', path.join(tmp, 'b.safetensors')]],
    ['compare', ['compare', GOLDEN, GOLDEN]],
    ['rescan', ['rescan', '--model', MODEL, '--dump', GOLDEN]],
    ['forgotten', ['forgotten', '--model', MODEL, '--text', SAMPLE]],
  ];
  for (const [name, argv] of commands) {
    it(`${name} refuses, before the work, a run estimated over --max-seconds, in one line naming the flag`, async () => {
      const c = capture(true);
      assert.equal(await main([...argv, '--max-seconds', '0.0001'], c.io), 1);
      assert.equal(c.err.length, 1, c.err.join('\n'));
      assert.match(c.err[0], new RegExp(`^mamba-scope ${name}: .*estimated to take [\\d.]+ .*over the --max-seconds limit of 0\\.0001 s: .*raise --max-seconds$`));
      assert.deepEqual(c.out, []);
      assert.deepEqual(c.progress, [], 'refused before any phase started');
    });
  }

  it('a bad --max-seconds is a usage error', async () => {
    const c = capture(false);
    assert.equal(await main(['compare', GOLDEN, GOLDEN, '--max-seconds', '0'], c.io), 2);
    assert.match(c.err[0], /--max-seconds must be a positive number/);
  });

  it('inspect reports the whole run, attention included, and draws progress with an ETA only on a terminal', async () => {
    const argv = ['inspect', '--model', MODEL, '--text', SAMPLE, '--out', path.join(tmp, 'att.safetensors'), '--attention'];
    const tty = capture(true);
    assert.equal(await main(argv, tty.io), 0, tty.err.join('\n'));
    const time = tty.out.find((l) => l.startsWith('time'));
    const m = /^time +([\d.]+) s in all \(forward ([\d.]+) s, attention ([\d.]+) s; estimated .*\)$/.exec(time ?? '');
    assert.ok(m, `no whole-run time line: ${time}`);
    assert.ok(Number(m[1]) >= Number(m[2]) + Number(m[3]), time);
    assert.ok(tty.progress.some((l) => /^inspect: forward \d+\/2 \(\d+ %\), .* elapsed, ETA /.test(l)), tty.progress.join('\n'));
    assert.ok(tty.progress.some((l) => /^inspect: attention \d+\/512 /.test(l)), tty.progress.join('\n'));
    assert.equal(tty.progress.at(-1), '', 'the status line is cleared at the end');

    const pipe = capture(false);
    assert.equal(await main(argv, pipe.io), 0);
    assert.ok(!pipe.err.some((l) => /ETA/.test(l)), pipe.err.join('\n'));
    assert.ok(!pipe.out.some((l) => /ETA/.test(l)));
  });

  it('the --json commands keep stdout to the contract and stderr free of progress and time', async () => {
    const c = capture(false);
    assert.equal(await main(['rescan', '--model', MODEL, '--dump', GOLDEN, '--layer', '0', '--json'], c.io), 0);
    assert.equal(c.out.length, 1);
    JSON.parse(c.out[0]);
    assert.deepEqual(c.err, []);
    const text = capture(false);
    assert.equal(await main(['rescan', '--model', MODEL, '--dump', GOLDEN, '--layer', '0'], text.io), 0);
    assert.match(text.err.join('\n'), /^time: [\d.]+ s in all \(rescan [\d.]+ s; estimated .*\)$/);
  });

  it('processIO gives progress only to a terminal stderr, redrawn in place', () => {
    const written: string[] = [];
    const stream = (isTTY: boolean) => ({ isTTY, write: (s: string) => written.push(s) });
    assert.equal(processIO(stream(false), stream(false)).progress, undefined);
    processIO(stream(false), stream(true)).progress!('inspect: forward 1/2');
    assert.deepEqual(written, ['\r\x1b[2Kinspect: forward 1/2']);
  });

  it('the time covers the whole run, outside the phases too, and the ETA scales the time spent by the work left', async () => {
    let now = 0;
    const lines: string[] = [];
    const budget = new RunBudget('test', { out: () => {}, err: () => {}, progress: (s) => lines.push(s) }, 100, () => now);
    now += 5000; // loading, before any phase
    budget.plan([{ name: 'fast', work: 10, rate: 10 }, { name: 'slow', work: 30, rate: 10 }], 'n/a');
    await budget.phase('fast', 1, () => { now += 2000; });
    await budget.phase('slow', 4, (tick) => {
      now += 1000;
      tick(1); // 1 s + a quarter of 3 s of 4 s done in 3 s: 2.25 s left estimated, scaled by 3/1.75
    });
    assert.match(budget.summary(), /^8\.00 s in all \(fast 2\.00 s, slow 1\.00 s; estimated 4 s\)$/);
    assert.ok(lines.some((l) => l === 'test: slow 1/4 (25 %), 3 s elapsed, ETA 3.9 s'), lines.join('\n'));
  });
});
