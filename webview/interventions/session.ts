/**
 * What the panel's causal views share: the last intervention's effect, the sweep, the logit lens
 * and the causal checks of the detector's suggestions, for the inspection shown; the one job that
 * runs at a time (its progress and its Cancel, shown in the panel's header); and the intervention
 * a right-click on a token asked for, which the Interventions view picks up.
 */
import { CancelledError, MambaScopeError } from '../../src/engine/errors';
import type { Intervention } from '../../src/engine/interventions';
import { localContext, type InterventionCompute, type InterventionOutcome, type LensResult, type SweepResult } from './compute';
import type { Progress, RequestContext } from '../../src/protocol';

/** A forgotten token checked by ablation: the mean KL of the outputs from forgottenAt on, against ε. */
export interface CausalCheck {
  readonly layer: number;
  readonly token: number;
  readonly forgottenAt: number;
  readonly meanKl: number;
  readonly epsilon: number;
}

export interface Job {
  readonly label: string;
  readonly progress: Progress | null;
}

/** What a right-click on a token asks the Interventions view to show (and maybe run at once). */
export interface InterventionRequest {
  readonly intervention: Intervention;
  readonly run: boolean;
}

export const causalKey = (layer: number, token: number): string => `${layer}:${token}`;

export class InterventionSession {
  outcome: InterventionOutcome | null = null;
  sweep: SweepResult | null = null;
  lens: LensResult | null = null;
  readonly causal = new Map<string, CausalCheck>();
  /** The last request from the token strip's menu, taken by the Interventions view. */
  request: InterventionRequest | null = null;
  /** The target token picked in the next-token view (a click on a prediction), for the Interventions form. */
  target: number | null = null;
  private running: { job: Job; controller: AbortController } | null = null;
  private runId: string | null = null;
  private readonly listeners = new Set<() => void>();

  constructor(readonly compute: InterventionCompute, private readonly status: (text: string, kind?: 'info' | 'error') => void) {}

  get job(): Job | null {
    return this.running?.job ?? null;
  }

  /** A new inspection is shown: what belonged to the last one goes (the job in flight is cancelled). */
  showRun(runId: string | null): void {
    if (runId === this.runId) return;
    this.runId = runId;
    this.cancel();
    this.compute.forget();
    this.outcome = this.sweep = this.lens = null;
    this.causal.clear();
    this.changed();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed(): void {
    for (const l of [...this.listeners]) l();
  }

  /** Asks the Interventions view to show (and, with `run`, start) an intervention. */
  ask(request: InterventionRequest): void {
    this.request = request;
    this.changed();
  }

  /** A prediction clicked in the next-token view becomes the target whose probability the next intervention reports. */
  pickTarget(id: number): void {
    this.target = id;
    this.changed();
  }

  cancel(): void {
    this.running?.controller.abort();
  }

  /**
   * Runs one job at a time: a second is refused in one line while one runs. A cancelled job
   * resolves to undefined; a failure is shown in the status line and rethrown for the caller.
   * `outer` is the host's context when the host asked (its own notification can cancel it).
   */
  async start<T>(label: string, work: (ctx: RequestContext) => Promise<T>, outer?: RequestContext): Promise<T | undefined> {
    if (this.running) {
      const problem = `“${this.running.job.label}” is still running in the panel; cancel it first`;
      // The host asked: it shows the refusal itself. Asked in the panel: the status line says it.
      if (outer) throw new MambaScopeError('bad-input', label, problem);
      this.status(`${label}: ${problem}`, 'error');
      return undefined;
    }
    const controller = new AbortController();
    const onOuter = () => controller.abort();
    outer?.signal.addEventListener('abort', onOuter, { once: true });
    const running = { job: { label, progress: null } as Job, controller };
    this.running = running;
    this.changed();
    const ctx = localContext(controller.signal, (p) => {
      running.job = { label, progress: p };
      outer?.progress(p);
      this.changed();
    });
    try {
      return await work(ctx);
    } catch (e) {
      if (e instanceof CancelledError || controller.signal.aborted) {
        this.status(`${label}: cancelled`);
        if (outer?.signal.aborted) throw new CancelledError(label);
        return undefined;
      }
      this.status(`${label} failed: ${e instanceof Error ? e.message : String(e)}`, 'error');
      throw e;
    } finally {
      outer?.signal.removeEventListener('abort', onOuter);
      this.running = null;
      this.changed();
    }
  }

  /** Runs an intervention and shows its effect in the token strip and the next-token view. */
  async intervene(interventions: readonly Intervention[], target: number | undefined, outer?: RequestContext): Promise<InterventionOutcome | undefined> {
    const label = interventions.map((i) => i.kind).join(' + ');
    const outcome = await this.start(label, (ctx) => this.compute.effect(interventions, target, ctx), outer);
    if (outcome && outcome.runId === this.runId) {
      this.outcome = outcome;
      const first = outcome.effect.firstChanged;
      this.status(`${outcome.specs.join('; ')}: ${first === null ? 'no position changed' : `first change at token ${first}`} (${Math.round(outcome.forwardMs)} ms)`);
      this.changed();
    }
    return outcome;
  }

  clearOutcome(): void {
    this.outcome = null;
    this.changed();
  }
}
