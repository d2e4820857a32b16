import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import fc from 'fast-check';
import { InputError } from '../../src/engine/errors';
import { checkInput, CORPUS_DIR, fuzz, loadDir, REGRESSIONS_DIR } from '../fuzz/harness';
import { FUZZ_TARGETS, type FuzzTarget } from '../fuzz/targets';

/**
 * The fuzz suite's short mode (`npm run fuzz` is the long one): every reader gets a few hundred
 * generated and mutated inputs from a fixed seed, and every corpus seed and saved regression is
 * replayed. FUZZ_SHORT_RUNS / FUZZ_SEED vary it.
 */
const RUNS = Number(process.env.FUZZ_SHORT_RUNS ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? 20240601);

describe('formats: fuzz harness', () => {
  const fake = (run: (input: Uint8Array) => Promise<void>): FuzzTarget => ({ name: 'fake', generate: fc.uint8Array(), run, allocationBudget: (n) => 1024 + n });
  const input = new Uint8Array(16);

  it('passes typed rejections and flags any other exception as a bug', async () => {
    assert.equal(await checkInput(fake(async () => { throw new InputError('f', 'bad'); }), input), null);
    assert.match((await checkInput(fake(async () => { throw new RangeError('Invalid typed array length: -1'); }), input)) ?? '', /^threw RangeError: Invalid typed array length/);
    assert.match((await checkInput(fake(async () => { JSON.parse('{'); }), input)) ?? '', /^threw SyntaxError/);
  });

  it('flags allocations the input cannot justify', async () => {
    let kept: Uint8Array | null = null;
    const reason = await checkInput(fake(async () => { kept = new Uint8Array(8 << 20); }), input);
    assert.match(reason ?? '', /^allocated \d+ ArrayBuffer bytes for a 16-byte input \(budget 1040\)/);
    assert.equal(kept!.length, 8 << 20);
  });
});

describe('formats: fuzz (short mode)', () => {
  for (const target of FUZZ_TARGETS) {
    describe(target.name, () => {
      it('accepts its own corpus seeds and every saved regression input', async () => {
        const inputs = [...loadDir(path.join(CORPUS_DIR, target.name)), ...loadDir(path.join(REGRESSIONS_DIR, target.name))];
        const problems: string[] = [];
        for (const { file, bytes } of inputs) {
          const reason = await checkInput(target, bytes);
          if (reason) problems.push(`${path.relative(process.cwd(), file)}: ${reason}`);
        }
        assert.deepEqual(problems, []);
      });

      it(`${RUNS} generated and mutated inputs: typed errors only, no hang, no unchecked allocation`, async () => {
        const report = await fuzz(target, { runs: RUNS, seed: SEED });
        assert.equal(report.runs, RUNS);
        assert.deepEqual(report.failures.map((f) => `${f.reason} (saved as ${path.relative(process.cwd(), f.saved)})`), []);
      });
    });
  }
});
