/**
 * A long run in the panel (more than FULL_RESOLUTION_TOKENS tokens): the chunked forward that
 * keeps the summaries, tiles and checkpoints (LongRun), then the window in view at full
 * resolution, recomputed from the nearest checkpoint each time the window moves. The views show
 * the window's data; the overview shows the whole run. One window recompute at a time: a move
 * cancels the one under way, and its progress and Cancel button are in the panel's header.
 */
import { CancelledError } from '../../src/engine/errors';
import type { BackendInfo, RequestContext, RunParams, RunSummary, TokenSummary } from '../../src/protocol';
import type { App } from '../app';
import type { ComputeSession } from '../compute';
import { windowInspection } from '../inspection';
import { PanelData } from '../panelData';
import { tokenSummary } from '../tokenSummary';
import type { LongRun } from './longRun';
import { clampWindow, sameWindow, windowShowing, type TokenWindow } from './window';

/** A window move waits this long for the next one (a drag sends many) before its recompute starts. */
const SETTLE_MS = 60;

export interface LongHooks {
  /** The decorations follow the window: its per-token values for the host. */
  readonly notifyWindow: (summary: TokenSummary) => void;
  readonly defaultLayer: () => number;
}

export class LongSession {
  private run: LongRun | null = null;
  private backend: BackendInfo | null = null;
  /** The window recompute under way, and the window it computes. */
  private job: { window: TokenWindow; controller: AbortController } | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly compute: ComputeSession, private readonly app: App, private readonly hooks: LongHooks) {
    app.store.subscribe((s, changed) => {
      if (changed.has('window') && s.window && this.run && this.app.current?.long?.run === this.run) this.moveTo(s.window);
    });
  }

  /** Lets go of the long run (a new inspection starts): cancels its window recompute. */
  stop(): void {
    this.cancelWindow();
    this.run = null;
  }

  /** The host's run request of a long sample: the chunked forward, the overview, then the first window at full resolution. */
  async start(params: RunParams, threshold: number, ctx: RequestContext): Promise<RunSummary> {
    this.stop();
    const { run, backend, forwardMs } = await this.compute.runLong(params, threshold, ctx);
    this.run = run;
    this.backend = backend;
    const first = clampWindow([0, run.tokens], run.tokens);
    // The first window is this request's own work (cancelled with it): a move meanwhile starts another.
    const own = new AbortController();
    this.job = { window: first, controller: own };
    // The overview first: the whole sample from what the run kept, before the window's internals.
    this.app.show(new PanelData(windowInspection(run, first, null), this.compute.model, { run, fullResolution: false }), this.hooks.defaultLayer(), null);
    let data: PanelData;
    try {
      data = await this.showWindow(run, first, ctx, null);
    } finally {
      if (this.job?.controller === own) this.job = null;
    }
    this.app.setStatus(`${params.sampleName}: ${run.tokens} tokens in ${Math.round(forwardMs)} ms on ${backend.backend} (in chunks); tokens ${first[0]}–${first[1] - 1} at full resolution`);
    return { ...tokenSummary(data, params.runId), backend, forwardMs };
  }

  /** The host's editor cursor on token `t` of the sample: the window moves there when it is outside. */
  select(t: number, layer?: number): void {
    const run = this.run;
    const data = this.app.current;
    if (!run || data?.long?.run !== run || t < 0 || t >= run.tokens) return;
    const ins = data.inspection;
    const w = windowShowing([ins.offset, ins.offset + ins.length], t, run.tokens);
    const patch = layer !== undefined && data.layerNumbers.includes(layer) ? { layer } : {};
    if (w[0] === ins.offset && w[1] === ins.offset + ins.length) this.app.store.set({ ...patch, token: t - ins.offset });
    else {
      this.app.store.set(patch);
      this.moveTo(w, t);
    }
  }

  cancelWindow(): void {
    clearTimeout(this.timer);
    this.job?.controller.abort();
    this.job = null;
    this.app.setLongJob(null);
  }

  /** Recomputes window `w` once the moves settle; `selected`: the sample's token to select in it (default: the one selected, if inside). */
  private moveTo(w: TokenWindow, selected?: number): void {
    const run = this.run!;
    const data = this.app.current!;
    const shown: TokenWindow = [data.inspection.offset, data.inspection.offset + data.inspection.length];
    if ((sameWindow(shown, w) && data.long?.fullResolution) || sameWindow(this.job?.window ?? null, w)) return;
    this.cancelWindow();
    const controller = new AbortController();
    this.job = { window: w, controller };
    const token = selected ?? (this.app.store.get().token === null ? null : this.app.store.get().token! + data.inspection.offset);
    this.app.setLongJob(`tokens ${w[0]}–${w[1] - 1}: waiting for the window to settle`, () => this.cancelWindow());
    this.timer = setTimeout(() => {
      const ctx: RequestContext = {
        signal: controller.signal,
        progress: (p) => controller.signal.aborted || this.app.setLongJob(`tokens ${w[0]}–${w[1] - 1}: ${p.stage}${p.total > 1 ? ` ${p.done}/${p.total}` : ''}`, () => this.cancelWindow()),
        throwIfCancelled: () => {
          if (controller.signal.aborted) throw new CancelledError('window recompute');
        },
      };
      this.showWindow(run, w, ctx, token).then(
        (d) => this.hooks.notifyWindow(tokenSummary(d, run.params.runId)),
        (e) => {
          if (e instanceof CancelledError) this.app.setStatus(`tokens ${w[0]}–${w[1] - 1}: cancelled; the views show tokens ${shown[0]}–${shown[1] - 1}`);
          else this.app.setStatus(`tokens ${w[0]}–${w[1] - 1} could not be recomputed: ${e instanceof Error ? e.message : String(e)}`, 'error');
        },
      ).finally(() => {
        if (this.job?.controller === controller) {
          this.job = null;
          this.app.setLongJob(null);
        }
      });
    }, SETTLE_MS);
  }

  /** Window `w`'s internals from the nearest checkpoint, shown with their layer summaries. `token`: the sample's token to select, if inside. */
  private async showWindow(run: LongRun, w: TokenWindow, ctx: RequestContext, token: number | null): Promise<PanelData> {
    const started = performance.now();
    const result = await this.compute.recomputeWindow(run, w, ctx);
    ctx.throwIfCancelled();
    const data = new PanelData(windowInspection(run, w, result), this.compute.model, { run, fullResolution: true });
    const local = token !== null && token >= w[0] && token < w[1] ? token - w[0] : null;
    this.app.show(data, this.hooks.defaultLayer(), local);
    const state = this.app.store.get();
    await data.computeSummaries(state.threshold, state.layer, (done, total) => ctx.progress({ stage: 'layer summaries', done, total }), () => ctx.signal.aborted);
    const from = run.checkpointBefore(w[0]);
    this.app.setStatus(`tokens ${w[0]}–${w[1] - 1} of ${run.tokens} at full resolution: recomputed from the checkpoint at token ${from} in ${Math.round(performance.now() - started)} ms on ${this.backend?.backend ?? 'the panel'}`);
    return data;
  }
}
