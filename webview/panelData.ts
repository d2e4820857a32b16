/**
 * The data behind the panel: the current inspection, the loaded model, a small cache of per-layer
 * analyses, and the per-layer summaries computed for every layer in the background (the layer
 * table and the token strip fill in as they arrive). For a long run the inspection is the window
 * in view (its internals at full resolution, or none while they are recomputed) and `long` holds
 * what the run kept of the whole sample.
 */
import { CancelledError } from '../src/engine/errors';
import { LayerAnalysis } from './analysis/layerAnalysis';
import { summarizeLayer, type LayerSummary } from './analysis/summaries';
import type { Inspection, LayerRecord, ModelContext } from './inspection';
import type { LongRun } from './long/longRun';

/** A long run and the window this data shows; `fullResolution` once the window's internals are in. */
export interface LongPart {
  readonly run: LongRun;
  readonly fullResolution: boolean;
}

/** Analyses kept at once: the selected layer and the one before, so flipping back is instant. */
const ANALYSIS_CACHE = 2;

export class PanelData {
  private readonly analyses = new Map<number, LayerAnalysis>();
  private readonly summaries = new Map<number, LayerSummary>();
  private readonly summaryListeners = new Set<() => void>();
  private summaryJob = 0;
  private latestJob: Promise<void> = Promise.resolve();

  constructor(readonly inspection: Inspection, readonly model: ModelContext | null, readonly long: LongPart | null = null) {}

  /** Bytes of the layers' internals this data holds (and a long run's summaries): what a new run may have to make room for. */
  get keptBytes(): number {
    const internals = this.inspection.layers.reduce((sum, l) => sum + Object.values(l.tensors).reduce((s, t) => s + (t?.data.byteLength ?? 0), 0), 0);
    return internals + (this.long?.run.keptBytes ?? 0);
  }

  /** The host's run: a long run's window data names its window (inspection.id), the host names the run. */
  get runId(): string {
    return this.long?.run.params.runId ?? this.inspection.id;
  }

  get layerNumbers(): number[] {
    return this.inspection.layers.map((l) => l.layer);
  }

  record(layer: number): LayerRecord | undefined {
    return this.inspection.layers.find((l) => l.layer === layer);
  }

  /** The analysis of a layer that has data; undefined otherwise. */
  analysis(layer: number): LayerAnalysis | undefined {
    let a = this.analyses.get(layer);
    if (a) {
      this.analyses.delete(layer);
      this.analyses.set(layer, a);
      return a;
    }
    const rec = this.record(layer);
    if (!rec) return undefined;
    a = new LayerAnalysis(rec, this.model);
    this.analyses.set(layer, a);
    while (this.analyses.size > ANALYSIS_CACHE) this.analyses.delete(this.analyses.keys().next().value!);
    return a;
  }

  summary(layer: number): LayerSummary | undefined {
    return this.summaries.get(layer);
  }

  onSummaries(listener: () => void): () => void {
    this.summaryListeners.add(listener);
    return () => this.summaryListeners.delete(listener);
  }

  /**
   * (Re)computes every layer's summary at threshold τ, `first` layer first. A newer call
   * supersedes an older one, whose promise then settles with the newer one; `cancelled` stops
   * it early (a run the host cancelled).
   */
  computeSummaries(threshold: number, first: number, progress?: (done: number, total: number) => void, cancelled?: () => boolean): Promise<void> {
    this.latestJob = this.summarize(++this.summaryJob, threshold, first, progress, cancelled);
    return this.latestJob;
  }

  private async summarize(job: number, threshold: number, first: number, progress?: (done: number, total: number) => void, cancelled?: () => boolean): Promise<void> {
    const layers = this.layerNumbers.sort((a, b) => (a === first ? -1 : b === first ? 1 : a - b));
    let done = 0;
    let scratch = new Float32Array(0);
    for (const layer of layers) {
      if (job !== this.summaryJob) return this.latestJob;
      if (cancelled?.()) throw new CancelledError('layer summaries');
      const known = this.summaries.get(layer);
      if (!known || known.threshold !== threshold) {
        // Outside the analysis cache, which keeps the layers the views show.
        const analysis = this.analyses.get(layer) ?? new LayerAnalysis(this.record(layer)!, this.model);
        const size = this.inspection.length * analysis.channels;
        if (scratch.length < size) scratch = new Float32Array(size);
        this.summaries.set(layer, await summarizeLayer(analysis, threshold, scratch));
        for (const l of this.summaryListeners) l();
      }
      progress?.(++done, layers.length);
    }
  }
}
