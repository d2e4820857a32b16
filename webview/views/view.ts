/**
 * The view system. A view is a small object with an element and an update(); the panel puts each
 * one in a ViewFrame that owns the empty/unavailable/error states, so a view only draws data and
 * a failure in one view never blanks another. Views are listed in views/index.ts with the area
 * they sit in; later views (numerics, attention, annotations) are added there, nothing else.
 */
import type { Tensor } from '../../src/engine/tensor';
import type { Annotation, AnnotationEdit, AnnotationSuggestion, ComparisonParams, PanelDescription } from '../../src/protocol';
import { Unavailable } from '../analysis/layerAnalysis';
import type { PanelData } from '../panelData';
import type { InterventionSession } from '../interventions/session';
import type { SelectionStore, ViewState } from '../state';

export type ViewDescription = PanelDescription['views'][string];

/** Where a view sits; an area with several views shows them as tabs. */
/** 'overview': a long run's whole sample, above the strip; hidden for other data. */
export type Area = 'overview' | 'strip' | 'main' | 'side' | 'lower' | 'lowerSide';

export interface ViewUpdate {
  readonly data: PanelData;
  readonly state: ViewState;
  /** Fields of the state that changed; null after new data (everything changed). */
  readonly changed: ReadonlySet<keyof ViewState> | null;
  /** True once a newer update started: an async view stops and draws nothing. */
  readonly stale: () => boolean;
}

/** A tensor slice to export as CSV/.npy: what the view shows, at data resolution. */
export interface ExportSlice {
  /** File name stem: "layer2-delta-tokens0-99". */
  readonly name: string;
  readonly tensor: Tensor<Float32Array>;
  /** Labels of the rows (first axis) and columns, for the CSV header and first column. */
  readonly rowLabels: readonly string[];
  readonly columnLabels: readonly string[];
  /** TransformerLens / MambaLens hook names of the tensor this is (a slice of): export.ts hooksOf. */
  readonly hooks?: readonly string[];
}

export interface View {
  readonly element: HTMLElement;
  /** Draws the data; throw Unavailable (message = what to do next) when it cannot. */
  update(u: ViewUpdate): void | Promise<void>;
  describe?(): ViewDescription;
  snapshot?(): HTMLCanvasElement | null;
  slice?(): ExportSlice | null;
  dispose?(): void;
}

export interface ViewContext {
  readonly store: SelectionStore;
  /** The data shown now, or null. */
  readonly data: () => PanelData | null;
  /** Annotations of the current run (the token strip underlines them, the annotations view lists them). */
  readonly annotations: () => readonly Annotation[];
  /** The detector's open suggestions for the current run, as the host filtered them. */
  readonly suggestions: () => readonly AnnotationSuggestion[];
  /** Sends an annotation edit to the host, which saves it and answers with setAnnotations. */
  readonly annotate: (edit: AnnotationEdit) => void;
  /** The last "Compare Dumps…" result; it describes the data only while its dump is shown. */
  readonly comparison: () => ComparisonParams | null;
  /** The causal runs (interventions, sweep, logit lens, causal checks) and their results. */
  readonly interventions: InterventionSession;
  /** The host's file picker for a steer's vector (FILE and KEY) or a patch-state's dump; null when the user cancels. */
  readonly pickInterventionFile: (kind: 'steer' | 'patch-state', dModel: number) => Promise<{ readonly file: string; readonly key?: string } | null>;
  /** Brings a view's tab to the front (the token strip's menu opens the Interventions view). */
  readonly showView: (id: string) => void;
  /** mambaScope.causalEpsilon: the KL below which an ablated forgotten token counts as causally forgotten. */
  readonly causalEpsilon: () => number;
}


export interface ViewSpec {
  readonly id: string;
  readonly title: string;
  readonly area: Area;
  /** Shown before any data arrives. */
  readonly empty: string;
  /** Views that only make sense for some data (e.g. the tensor browser: dumps and runs both). */
  readonly when?: (data: PanelData) => boolean;
  create(ctx: ViewContext): View;
}

export class ViewFrame {
  readonly element: HTMLElement;
  private readonly body: HTMLElement;
  private readonly message: HTMLElement;
  private view: View | null = null;
  private generation = 0;
  private visible = true;
  private pending: { data: PanelData | null; state: ViewState; changed: ReadonlySet<keyof ViewState> | null } | null = null;
  /** Set until an update succeeds: after creation, an error or an unavailable state the view redraws fully. */
  private needsFull = true;

  constructor(readonly spec: ViewSpec, private readonly ctx: ViewContext, private readonly onError: (view: string, e: unknown) => void) {
    this.element = document.createElement('section');
    this.element.className = `view view-${spec.id}`;
    this.element.setAttribute('aria-label', spec.title);
    this.element.dataset.view = spec.id;
    this.message = document.createElement('div');
    this.message.className = 'view-message';
    this.message.setAttribute('role', 'status');
    this.body = document.createElement('div');
    this.body.className = 'view-body';
    this.element.append(this.message, this.body);
    this.showMessage('empty', spec.empty);
  }

  /** Hidden frames (inactive tabs) defer their updates until shown. */
  setVisible(visible: boolean): void {
    this.visible = visible;
    if (visible && this.pending) {
      const p = this.pending;
      this.pending = null;
      this.refresh(p.data, p.state, p.changed);
    }
  }

  refresh(data: PanelData | null, state: ViewState, changed: ReadonlySet<keyof ViewState> | null): void {
    if (!this.visible) {
      // Merge: "everything changed" (null) wins over a set of fields.
      const prev = this.pending?.changed;
      const merged = this.pending === null ? changed : prev === null || changed === null ? null : new Set([...prev!, ...changed]);
      this.pending = { data, state, changed: merged };
      return;
    }
    const gen = ++this.generation;
    if (!data) {
      this.showMessage('empty', this.spec.empty);
      return;
    }
    if (this.spec.when && !this.spec.when(data)) {
      this.showMessage('empty', this.spec.empty);
      return;
    }
    try {
      if (!this.view) {
        this.view = this.spec.create(this.ctx);
        this.body.append(this.view.element);
      }
      if (this.needsFull) changed = null;
      this.needsFull = true;
      const result = this.view.update({ data, state, changed, stale: () => gen !== this.generation });
      if (result instanceof Promise) {
        this.element.dataset.state = 'busy';
        result.then(
          () => gen === this.generation && this.showReady(),
          (e) => gen === this.generation && this.fail(e),
        );
      } else this.showReady();
    } catch (e) {
      this.fail(e);
    }
  }

  describe(): ViewDescription {
    const d = this.element.dataset.state === 'ready' ? this.view?.describe?.() : undefined;
    return d ?? { drawn: false, distinctColors: 0, min: NaN, max: NaN };
  }

  get current(): View | null {
    return this.element.dataset.state === 'ready' ? this.view : null;
  }

  dispose(): void {
    this.view?.dispose?.();
    this.element.remove();
  }

  private showReady(): void {
    this.needsFull = false;
    this.element.dataset.state = 'ready';
    this.message.hidden = true;
    this.body.hidden = false;
  }

  private fail(e: unknown): void {
    if (e instanceof Unavailable) {
      this.showMessage('unavailable', e.message);
      return;
    }
    const text = e instanceof Error ? e.message : String(e);
    this.showMessage('error', `${this.spec.title} failed: ${text}. The other views are unaffected; try another layer or re-run Inspect.`);
    this.onError(this.spec.id, e);
  }

  private showMessage(state: 'empty' | 'unavailable' | 'error', text: string): void {
    this.element.dataset.state = state;
    this.message.textContent = text;
    this.message.hidden = false;
    this.body.hidden = true;
  }
}
