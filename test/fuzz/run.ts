/**
 * `npm run fuzz`: the long mode of the fuzz suite.
 *
 *   node --import tsx test/fuzz/run.ts [--long] [--runs N] [--target NAME]... [--seed S]
 *
 * --long runs FUZZ_RUNS (default 100 000) inputs per reader; without it, 1 000. Readers run one at a
 * time, each in a worker thread watched from here: the worker publishes every input in a shared
 * buffer before running it, so an input that hangs (no progress for HANG_MS) or kills the worker
 * (out of memory) is saved as a regression, the worker is replaced, and the run goes on.
 * Ends with a table of runs, time and failures per reader (the figures docs/SECURITY.md records).
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { fuzz, saveRegression, type FuzzReport } from './harness';
import { FUZZ_TARGETS } from './targets';

/** Far beyond the 1 s property (which the worker checks itself): this only catches true hangs. */
const HANG_MS = 15_000;
const MAX_INPUT_BYTES = 4 << 20;

interface Job {
  readonly target: string;
  readonly runs: number;
  readonly seed: number;
  /** [runs started, length of the input in flight or -1 between inputs] then the input's bytes. */
  readonly shared: SharedArrayBuffer;
}

type WorkerResult = { kind: 'done'; report: FuzzReport } | { kind: 'lost'; runsStarted: number; reason: string; input: Uint8Array };

async function workerMain(job: Job): Promise<void> {
  const target = FUZZ_TARGETS.find((t) => t.name === job.target);
  if (!target) throw new Error(`no fuzz target ${job.target}`);
  const header = new Int32Array(job.shared, 0, 2);
  const body = new Uint8Array(job.shared, 8);
  const report = await fuzz(target, {
    runs: job.runs,
    seed: job.seed,
    watch: (input) => {
      if (input === null) {
        header[1] = -1;
        return;
      }
      body.set(input.subarray(0, body.length));
      header[1] = input.length;
      Atomics.add(header, 0, 1);
    },
  });
  parentPort?.postMessage(report);
}

function runWorker(target: string, runs: number, seed: number): Promise<WorkerResult> {
  const shared = new SharedArrayBuffer(8 + MAX_INPUT_BYTES);
  const header = new Int32Array(shared, 0, 2);
  const job: Job = { target, runs, seed, shared };
  // A .ts worker entry needs tsx registered inside the worker before it is loaded.
  const worker = new Worker(`require('tsx/cjs'); require(${JSON.stringify(__filename)});`, { eval: true, workerData: job, resourceLimits: { maxOldGenerationSizeMb: 2048 } });
  const inFlight = () => new Uint8Array(shared, 8, Math.max(0, Math.min(header[1], MAX_INPUT_BYTES))).slice();
  return new Promise((resolve, reject) => {
    let last = -1;
    let lastChange = Date.now();
    let lastPrint = Date.now();
    let settled = false;
    const finish = (r: WorkerResult | Error) => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    const lost = (reason: string) => {
      if (!settled) finish({ kind: 'lost', runsStarted: Atomics.load(header, 0), reason, input: inFlight() });
    };
    const watchdog = setInterval(() => {
      const started = Atomics.load(header, 0);
      if (started !== last) {
        last = started;
        lastChange = Date.now();
      }
      if (Date.now() - lastPrint > 30_000) {
        lastPrint = Date.now();
        console.log(`  ${target}: ${started} / ${runs}`);
      }
      if (Date.now() - lastChange > HANG_MS) {
        // Stuck between inputs means the generator or mutators hang: a fuzzer bug, not a reader's.
        const betweenInputs = Atomics.load(header, 1) < 0;
        if (betweenInputs) finish(new Error(`${target}: the fuzzer itself hung while generating input ${started + 1}`));
        else lost(`hung: no progress for ${HANG_MS} ms`);
        void worker.terminate();
      }
    }, 500);
    worker.on('message', (report: FuzzReport) => finish({ kind: 'done', report }));
    worker.on('error', (e) => lost(`killed the worker: ${e.message.split('\n')[0]}`));
    worker.on('exit', (code) => lost(`worker exited with code ${code}`));
  });
}

function parseArgs(argv: string[]): { runs: number; targets: string[]; seed: number } {
  let runs = 1000;
  let seed = Date.now() % 2 ** 31;
  const targets: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--long') runs = Number(process.env.FUZZ_RUNS ?? 100_000);
    else if (a === '--runs') runs = Number(argv[++i]);
    else if (a === '--seed') seed = Number(argv[++i]);
    else if (a === '--target') targets.push(argv[++i]);
    else throw new Error(`unknown argument ${a} (usage: run.ts [--long] [--runs N] [--target NAME]... [--seed S])`);
  }
  const known = FUZZ_TARGETS.map((t) => t.name);
  for (const t of targets) if (!known.includes(t)) throw new Error(`unknown target ${t}; targets: ${known.join(', ')}`);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  return { runs, targets: targets.length ? targets : known, seed };
}

async function main(): Promise<void> {
  const { runs, targets, seed } = parseArgs(process.argv.slice(2));
  console.log(`fuzz: ${runs} inputs per reader, seed ${seed}`);
  const rows: string[] = [];
  let failed = false;
  for (const target of targets) {
    let remaining = runs;
    let done = 0;
    let ms = 0;
    let failing = 0;
    const reasons: string[] = [];
    for (let attempt = 0; remaining > 0; attempt++) {
      const start = Date.now();
      const result = await runWorker(target, remaining, seed + attempt);
      if (result.kind === 'done') {
        done += result.report.runs;
        ms += result.report.ms;
        failing += result.report.failingInputs;
        reasons.push(...result.report.failures.map((f) => `${f.reason} → ${f.saved}`));
        remaining = 0;
      } else {
        const t = FUZZ_TARGETS.find((x) => x.name === target)!;
        const saved = saveRegression(t, result.input, result.reason);
        done += result.runsStarted;
        ms += Date.now() - start;
        failing += 1;
        reasons.push(`${result.reason} → ${saved}`);
        remaining -= Math.max(1, result.runsStarted);
      }
    }
    failed ||= failing > 0;
    console.log(`${target}: ${done} inputs in ${(ms / 1000).toFixed(1)} s, ${failing} failing`);
    for (const r of reasons) console.log(`  ${r}`);
    rows.push(`| ${target} | ${done} | ${(ms / 1000).toFixed(0)} s | ${failing} |`);
  }
  console.log('\n| reader | inputs | time | failing inputs |\n|---|---|---|---|');
  for (const r of rows) console.log(r);
  process.exitCode = failed ? 1 : 0;
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 2;
  });
} else {
  void workerMain(workerData as Job);
}
