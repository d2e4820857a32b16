/**
 * No silent long runs. Every command that can run for more than a few seconds plans its phases
 * here before doing any of them: each phase's work, in the units of its kind, over that kind's
 * rate, is its estimated time, and a plan over --max-seconds is refused with one line naming the
 * flag. On a terminal the phases report progress with an ETA (stderr, one line rewritten in
 * place); at the end the command reports the whole run's wall time, from its start to its end.
 */
import { LimitError } from '../engine/errors';
import type { LoadedModel } from '../engine/model/graph';
import { sizeOf } from '../engine/tensor';
import { number, UsageError, type OptionSpec, type ParsedArgs } from './args';
import type { CommandIO } from './command';

/**
 * Work done per second, by kind: about half of what a busy two-core machine measured, so an
 * estimate errs long (a run refused for taking 300 s takes at least 150 s here).
 */
export const RATES = {
  /** Multiply-adds of a forward (forwardWork) in the float64 reference. */
  reference: 1e8,
  /** The same on tfjs's backends in Node. */
  cpu: 5e7,
  wasm: 2e8,
  webgpu: 5e8,
  /** Channel × token pair × state terms of the implicit attention (attentionWork). */
  attention: 5e7,
  /** Token × channel × state steps of rescan's scans (rescanWork; chunked and parallel modes included). */
  rescanStep: 6e6,
  /** Token × channel × state decays of the retention sweeps of `forgotten`. */
  retentionStep: 1.5e7,
  /** Tensor elements read and compared. */
  element: 1e7,
} as const;

export const DEFAULT_MAX_SECONDS = 300;

/** The option every planned command takes. */
export const MAX_SECONDS_OPTION: Readonly<Record<string, OptionSpec>> = { 'max-seconds': { value: true } };

export const MAX_SECONDS_USAGE = `  --max-seconds S  refuse a run estimated to take longer than S seconds (default ${DEFAULT_MAX_SECONDS})`;

export function maxSecondsOf(args: ParsedArgs): number {
  const s = number(args, 'max-seconds') ?? DEFAULT_MAX_SECONDS;
  if (!(s > 0)) throw new UsageError(`--max-seconds must be a positive number of seconds; got ${s}`);
  return s;
}

/** Weights of a model: every tensor once (a tied lm_head is the embedding). */
export function parameterCount(model: LoadedModel): number {
  const backbone = new Set([model.embedding, model.normF, model.lmHead]);
  return model.layers.reduce((sum, l) => sum + l.parameters, 0) + [...backbone].reduce((sum, t) => sum + (t?.data.length ?? 0), 0);
}

/** Multiply-adds of a forward over `tokens` tokens: every weight once per token, plus about 3 per value of each layer's state. */
export function forwardWork(model: LoadedModel, tokens: number): number {
  const stateValues = model.layers.reduce((sum, l) => sum + sizeOf(l.kind.internals.h ?? [0]), 0);
  return modelWork(parameterCount(model), stateValues, tokens);
}

/** The same from the counts alone (a model not read yet): `stateValues` summed over the layers. */
export function modelWork(parameters: number, stateValues: number, tokens: number): number {
  return tokens * (parameters + 3 * stateValues);
}

/** Terms of the implicit attention of one layer: for each channel (Mamba-2: head), each pair s ≤ t, each state. */
export function attentionWork(channels: number, tokens: number, states: number): number {
  return channels * ((tokens * (tokens + 1)) / 2) * states;
}

export interface Phase {
  readonly name: string;
  /** Units of `rate`'s kind. */
  readonly work: number;
  /** Units per second. */
  readonly rate: number;
}

/** Counts one phase's steps; `done(k)` says k of the phase's steps are done. */
export type Tick = (done: number) => void;

/** A ForwardOptions.checkCancelled that ticks: the forwards poll it once before each layer. */
export function layerTicks(tick: Tick): () => void {
  let layer = 0;
  return () => tick(layer++);
}

/** Progress is redrawn at most this often, so it costs nothing next to the work. */
const REDRAW_MS = 250;

export class RunBudget {
  private readonly started: number;
  private planned: readonly Phase[] = [];
  private readonly measured: { name: string; seconds: number }[] = [];
  private phaseStart = 0;
  private firstPhaseStart: number | undefined;
  private lastDraw = -Infinity;

  /** Started when the command starts: its time is the whole run's. */
  constructor(
    private readonly command: string,
    private readonly io: CommandIO,
    private readonly maxSeconds: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = this.now();
  }

  /** Estimated seconds of the plan. */
  get estimate(): number {
    return this.planned.reduce((s, p) => s + p.work / p.rate, 0);
  }

  /** Records the phases and refuses the run, before any of them, when their estimate is over --max-seconds. `howToShorten` names the flags that shorten it. */
  plan(phases: readonly Phase[], howToShorten: string): void {
    this.planned = phases;
    const estimate = this.estimate;
    if (estimate > this.maxSeconds) {
      const parts = phases.map((p) => `${p.name} ${formatSeconds(p.work / p.rate)}`).join(', ');
      throw new LimitError(this.command, `the run is estimated to take ${formatSeconds(estimate)} (${parts}), over the --max-seconds limit of ${formatSeconds(this.maxSeconds)}: ${howToShorten}, or raise --max-seconds`);
    }
  }

  /** Runs one planned phase of `steps` steps; `body` ticks as it goes. Its wall time is measured. */
  async phase<T>(name: string, steps: number, body: (tick: Tick) => T | Promise<T>): Promise<T> {
    const index = this.planned.findIndex((p) => p.name === name);
    if (index < 0) throw new Error(`phase ${name} was not planned`);
    this.phaseStart = this.now();
    this.firstPhaseStart ??= this.phaseStart;
    this.lastDraw = -Infinity;
    this.draw(index, 0, steps);
    try {
      return await body((done) => this.draw(index, done, steps));
    } finally {
      this.measured.push({ name, seconds: (this.now() - this.phaseStart) / 1000 });
      this.io.progress?.('');
    }
  }

  /** Wall seconds since the command started. */
  get elapsed(): number {
    return (this.now() - this.started) / 1000;
  }

  /**
   * The time on stderr, for commands whose stdout is a table or a --json contract that scripts
   * read; none with --json, whose stderr carries only notes about the data.
   */
  reportTime(json: boolean): void {
    if (!json) this.io.err(`time: ${this.summary()}`);
  }

  /** "3.41 s in all (forward 1.20 s, attention 2.10 s; estimated 9.5 s)". */
  summary(): string {
    const phases = this.measured.map((m) => `${m.name} ${m.seconds.toFixed(2)} s`).join(', ');
    return `${this.elapsed.toFixed(2)} s in all (${phases}; estimated ${formatSeconds(this.estimate)})`;
  }

  /**
   * The ETA scales the time spent so far by the estimated work left over the estimated work done:
   * the rates' error cancels out once the run is under way. Before any work it is the estimate.
   */
  private draw(index: number, done: number, steps: number): void {
    if (!this.io.progress) return;
    const t = this.now();
    if (done > 0 && done < steps && t - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = t;
    const seconds = (p: Phase) => p.work / p.rate;
    const fraction = steps > 0 ? Math.min(1, done / steps) : 0;
    const doneEstimate = this.planned.slice(0, index).reduce((s, p) => s + seconds(p), 0) + fraction * seconds(this.planned[index]);
    const spent = (t - (this.firstPhaseStart ?? t)) / 1000;
    const eta = doneEstimate > 0 ? (spent * (this.estimate - doneEstimate)) / doneEstimate : this.estimate;
    const name = this.planned[index].name;
    this.io.progress(`${this.command}: ${name} ${done}/${steps} (${Math.floor(fraction * 100)} %), ${formatSeconds(spent)} elapsed, ETA ${formatSeconds(eta)}`);
  }
}

/** "0.4 s", "42 s", "3 min 05 s", "2 h 10 min". */
export function formatSeconds(s: number): string {
  if (s < 10) return `${Number(s.toPrecision(2))} s`;
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}
