/**
 * The fuzz properties and the loop that checks them. For every input a reader must
 *  - finish, or throw a MambaScopeError (any other exception is a bug: a crash in the extension host);
 *  - finish within 1 s of CPU time (MAX_INPUT_MS; the long mode's watchdog also catches true hangs);
 *  - not allocate more ArrayBuffer memory than the input can justify (target.allocationBudget):
 *    a bigger allocation means a size field was believed before it was checked.
 * Inputs that break a property are saved to regressions/<target>/ and replayed by the unit tests.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { MambaScopeError } from '../../src/engine/errors';
import { mutatedFrom } from './mutate';
import type { FuzzTarget } from './targets';

export const MAX_INPUT_MS = 1000;
/** Inputs saved per distinct failure reason and run. */
const SAVED_PER_REASON = 3;
export const CORPUS_DIR = path.join(__dirname, 'corpus');
export const REGRESSIONS_DIR = path.join(__dirname, 'regressions');

export function loadDir(dir: string): { file: string; bytes: Uint8Array }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => !f.endsWith('.txt') && !f.endsWith('.py') && !f.endsWith('.ts'))
    .sort()
    .map((f) => ({ file: path.join(dir, f), bytes: new Uint8Array(readFileSync(path.join(dir, f))) }));
}

export function seedsOf(target: FuzzTarget): Uint8Array[] {
  return loadDir(path.join(CORPUS_DIR, target.name)).map((s) => s.bytes);
}

/** Generated inputs and mutated seeds (three to one: mutations reach deeper). */
export function inputsFor(target: FuzzTarget): fc.Arbitrary<Uint8Array> {
  const seeds = seedsOf(target);
  if (seeds.length === 0) return target.generate;
  return fc.oneof({ arbitrary: target.generate, weight: 1 }, { arbitrary: mutatedFrom(seeds, target), weight: 3 });
}

function describeError(e: unknown): string {
  if (!(e instanceof Error)) return `threw a non-Error ${typeof e}: ${String(e).slice(0, 200)}`;
  const where = e.stack?.split('\n').find((l) => l.includes(' at ')) ?? '';
  return `threw ${e.constructor.name}: ${e.message.split('\n')[0].slice(0, 300)} ${where.trim()}`;
}

/** CPU milliseconds (not wall time: the machine may be busy with other work) spent running the input. */
async function cpuMsOf(run: () => Promise<void>): Promise<number> {
  const before = process.cpuUsage();
  await run();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

/** null when the input passes every property, otherwise what went wrong. */
export async function checkInput(target: FuzzTarget, input: Uint8Array): Promise<string | null> {
  const buffersBefore = process.memoryUsage().arrayBuffers;
  let failure: string | null = null;
  const run = async () => {
    try {
      await target.run(input);
    } catch (e) {
      if (!(e instanceof MambaScopeError)) failure = describeError(e);
    }
  };
  const ms = await cpuMsOf(run);
  if (failure) return failure;
  // Collected garbage only lowers the figure, so this can miss an allocation but never invent one.
  const grew = process.memoryUsage().arrayBuffers - buffersBefore;
  const budget = target.allocationBudget(input.length);
  if (grew > budget) return `allocated ${grew} ArrayBuffer bytes for a ${input.length}-byte input (budget ${budget})`;
  // A slow first run may be a garbage collection that belongs to earlier inputs: it must repeat.
  if (ms > MAX_INPUT_MS) {
    const again = await cpuMsOf(run);
    if (again > MAX_INPUT_MS) return `took ${ms.toFixed(0)} ms then ${again.toFixed(0)} ms of CPU (limit ${MAX_INPUT_MS} ms)`;
  }
  return null;
}

/** Saves a failing input under regressions/<target>/ (named by its hash, with the reason beside it). */
export function saveRegression(target: FuzzTarget, input: Uint8Array, reason: string): string {
  const dir = path.join(REGRESSIONS_DIR, target.name);
  mkdirSync(dir, { recursive: true });
  const name = createHash('sha256').update(input).digest('hex').slice(0, 16);
  writeFileSync(path.join(dir, `${name}.bin`), input);
  writeFileSync(path.join(dir, `${name}.txt`), `${reason}\n`);
  return path.join(dir, `${name}.bin`);
}

export interface FuzzReport {
  readonly target: string;
  readonly runs: number;
  readonly ms: number;
  /** Inputs that broke a property (all saved). */
  readonly failingInputs: number;
  /** One per distinct reason. */
  readonly failures: { reason: string; saved: string }[];
}

/**
 * Runs `runs` inputs through the target. Failures are saved and counted, not thrown, so one run
 * finds every distinct problem; `watch` lets a watchdog see the input in flight (null between inputs).
 */
export async function fuzz(target: FuzzTarget, options: { runs: number; seed: number; watch?: (input: Uint8Array | null) => void }): Promise<FuzzReport> {
  const failures: FuzzReport['failures'] = [];
  const seen = new Map<string, number>();
  const start = performance.now();
  let runs = 0;
  let failingInputs = 0;
  await fc.assert(
    fc.asyncProperty(inputsFor(target), async (input) => {
      runs++;
      options.watch?.(input);
      const reason = await checkInput(target, input);
      options.watch?.(null);
      if (reason) {
        failingInputs++;
        // Distinct reasons are the message without its numbers; a few inputs of each are kept, so a
        // frequent bug does not bury the corpus under thousands of copies of itself.
        const key = reason.replace(/\d+/g, 'N');
        const count = (seen.get(key) ?? 0) + 1;
        seen.set(key, count);
        if (count <= SAVED_PER_REASON) {
          const saved = saveRegression(target, input, reason);
          if (count === 1) failures.push({ reason, saved });
        }
      }
      return true;
    }),
    { numRuns: options.runs, seed: options.seed, endOnFailure: true },
  );
  return { target: target.name, runs, ms: performance.now() - start, failingInputs, failures };
}
