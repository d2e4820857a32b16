/**
 * The panel: header (what is shown, on which backend), toolbar (layer, metric, colormap, channel
 * order, τ, export), the view areas, and the glue between the selection store and the views.
 * It knows nothing about messages: main.ts connects it to the host.
 */
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-tab-header/index.js';
import '@vscode-elements/elements/dist/vscode-tab-panel/index.js';
import '@vscode-elements/elements/dist/vscode-tabs/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import type { VscodeSingleSelect } from '@vscode-elements/elements/dist/vscode-single-select/vscode-single-select.js';
import type { VscodeTabs } from '@vscode-elements/elements/dist/vscode-tabs/vscode-tabs.js';
import type { VscodeTextfield } from '@vscode-elements/elements/dist/vscode-textfield/vscode-textfield.js';
import { COLORMAPS, TOKEN_METRICS, type Annotation, type AnnotationEdit, type AnnotationSuggestion, type ComparisonParams, type ExportData, type ExportKind, type PanelDescription } from '../src/protocol';
import { METRIC_LABELS } from './analysis/layerAnalysis';
import { exportView, ExportError } from './export';
import type { PanelData } from './panelData';
import { COLORMAP_LABELS, isColormap } from './render/colormaps';
import { bindKeyboard, CHANNEL_ORDER_LABELS, CHANNEL_ORDERS, initialViewState, Store, type ChannelOrder, type ViewState } from './state';
import { button } from './views/common';
import { VIEWS } from './views/index';
import { ViewFrame, type Area, type ViewContext } from './views/view';
import type { InterventionCompute } from './interventions/compute';
import { InterventionSession } from './interventions/session';
import { DEFAULT_CAUSAL_EPSILON } from '../src/protocol';

const AREAS: readonly Area[] = ['overview', 'strip', 'main', 'side', 'lower', 'lowerSide'];
/** Views that show the causal runs' results, redrawn when one arrives. */
const CAUSAL_VIEWS = ['tokens', 'next', 'interventions', 'sweep', 'lens', 'annotations'];

export interface AppHooks {
  /** A view failed outside any request. */
  readonly onViewError: (view: string, e: unknown) => void;
  /** The user asked to export: the host saves the bytes. */
  readonly save: (data: ExportData) => Promise<void>;
  /** An annotation edit for the host to apply and save. */
  readonly annotate: (edit: AnnotationEdit) => void;
  /** The panel's causal runs on its engine. */
  readonly compute: InterventionCompute;
  /** The host's file picker for an intervention's file. */
  readonly pickInterventionFile: ViewContext['pickInterventionFile'];
}

export class App {
  readonly store = new Store<ViewState>(initialViewState());
  private data: PanelData | null = null;
  private annotationList: readonly Annotation[] = [];
  private suggestionList: readonly AnnotationSuggestion[] = [];
  private comparisonShown: ComparisonParams | null = null;
  private readonly frames: ViewFrame[] = [];
  private readonly tabs = new Map<Area, VscodeTabs>();
  private activeView = 'heatmap';
  private readonly titleEl: HTMLElement;
  private readonly backendEl: HTMLElement;
  private readonly statusEl: HTMLElement;
  private readonly layerSelect: VscodeSingleSelect;
  /** A long run's overview, above the strip: hidden for other data, which has no use for it. */
  private readonly overviewArea: HTMLElement;
  /** A long run's window recompute under way: what it does, and its Cancel button. */
  private readonly longJob: { bar: HTMLElement; text: HTMLElement; cancel: () => void };
  readonly interventions: InterventionSession;
  /** mambaScope.causalEpsilon, from the settings. */
  causalEpsilon = DEFAULT_CAUSAL_EPSILON;

  constructor(root: HTMLElement, private readonly hooks: AppHooks) {
    root.classList.add('mamba-scope');
    const header = el('header', 'panel-header');
    this.titleEl = el('h1', 'panel-title');
    this.titleEl.textContent = 'Mamba Scope';
    this.backendEl = el('span', 'backend');
    this.backendEl.textContent = 'backend: starting…';
    this.statusEl = el('span', 'status');
    this.statusEl.setAttribute('role', 'status');
    this.statusEl.setAttribute('aria-live', 'polite');
    this.interventions = new InterventionSession(hooks.compute, (text, kind) => this.setStatus(text, kind));
    this.longJob = longJobBar();
    header.append(this.titleEl, this.backendEl, this.statusEl, jobBar(this.interventions), this.longJob.bar);

    const toolbar = el('div', 'toolbar');
    toolbar.setAttribute('role', 'toolbar');
    toolbar.setAttribute('aria-label', 'View controls');
    this.layerSelect = select('Layer', [], (v) => this.store.set({ layer: Number(v) }));
    const prev = button('◀', 'Previous layer (↑)', () => this.stepLayer(-1));
    const next = button('▶', 'Next layer (↓)', () => this.stepLayer(1));
    const metric = select('Metric', TOKEN_METRICS.map((m) => [m, METRIC_LABELS[m]]), (v) => this.store.set({ metric: v as ViewState['metric'] }));
    const colormap = select('Colormap', COLORMAPS.map((c) => [c, COLORMAP_LABELS[c]]), (v) => isColormap(v) && this.store.set({ colormap: v }));
    const order = select('Channel order', CHANNEL_ORDERS.map((o) => [o, CHANNEL_ORDER_LABELS[o]]), (v) => this.store.set({ channelOrder: v as ChannelOrder }));
    const tau = document.createElement('vscode-textfield') as VscodeTextfield;
    tau.type = 'number';
    tau.min = 0;
    tau.max = 1;
    tau.step = 0.01;
    tau.setAttribute('aria-label', 'Near-reset threshold τ on meanₙ exp(Δ·A)');
    tau.addEventListener('change', () => {
      const v = Number(tau.value);
      if (Number.isFinite(v) && v > 0 && v < 1) this.store.set({ threshold: v });
      else tau.value = String(this.store.get().threshold);
    });
    const exports = (['png', 'csv', 'npy'] as const).map((k) => button(k === 'npy' ? '.npy' : k.toUpperCase(), `Export the ${k === 'png' ? 'picture' : 'tensor slice'} of the last view you used as ${k.toUpperCase()}`, () => void this.exportAndSave(k)));
    toolbar.append(
      labelled('Layer', prev, this.layerSelect, next),
      labelled('Metric', metric),
      labelled('Colormap', colormap),
      labelled('Order', order),
      labelled('τ', tau),
      labelled('Export', ...exports),
    );
    this.store.subscribe((s) => {
      metric.value = s.metric;
      colormap.value = s.colormap;
      order.value = s.channelOrder;
      tau.value = String(s.threshold);
      this.layerSelect.value = String(s.layer);
    });
    const initial = this.store.get();
    metric.value = initial.metric;
    colormap.value = initial.colormap;
    order.value = initial.channelOrder;
    tau.value = String(initial.threshold);

    const ctx: ViewContext = {
      store: this.store,
      data: () => this.data,
      annotations: () => this.annotationList,
      suggestions: () => this.suggestionList,
      annotate: hooks.annotate,
      comparison: () => this.comparisonShown,
      interventions: this.interventions,
      pickInterventionFile: hooks.pickInterventionFile,
      showView: (id) => this.selectTab(id),
      causalEpsilon: () => this.causalEpsilon,
    };
    const areas = new Map<Area, HTMLElement>(AREAS.map((a) => [a, el('div', `area area-${a}`)]));
    for (const spec of VIEWS) {
      const frame = new ViewFrame(spec, ctx, hooks.onViewError);
      this.frames.push(frame);
      for (const ev of ['pointerdown', 'focusin']) frame.element.addEventListener(ev, () => (this.activeView = spec.id));
    }
    for (const area of AREAS) this.fillArea(area, areas.get(area)!);
    const grid = el('div', 'panel-grid');
    grid.append(areas.get('main')!, areas.get('side')!, areas.get('lower')!, areas.get('lowerSide')!);
    this.overviewArea = areas.get('overview')!;
    this.overviewArea.hidden = true;
    root.append(header, toolbar, this.overviewArea, areas.get('strip')!, grid);

    this.store.subscribe((state, changed) => {
      if (changed.has('layer')) this.showAttentionOfAttentionLayer();
      for (const f of this.frames) f.refresh(this.data, state, changed);
    });
    // A new effect colours the strip by it; the views that show causal results redraw on any change.
    let outcome = this.interventions.outcome;
    this.interventions.subscribe(() => {
      if (this.interventions.outcome !== outcome) {
        outcome = this.interventions.outcome;
        this.store.set({ stripValues: outcome ? 'kl' : 'metric' });
      }
      for (const f of this.frames) if (CAUSAL_VIEWS.includes(f.spec.id)) f.refresh(this.data, this.store.get(), null);
    });
    bindKeyboard(this.store, {
      tokenCount: () => this.data?.inspection.length ?? 0,
      layers: () => this.data?.layerNumbers ?? [],
      channelCount: () => this.data?.analysis(this.store.get().layer)?.channels ?? 0,
    });
  }

  /**
   * Shows new data; `defaultLayer` is used if the current layer has no data. `token`: the
   * selection in the new data (a long run's window moved: the same token of the sample, or null
   * outside the new window); by default the current one when the data has it.
   */
  show(data: PanelData, defaultLayer: number, token?: number | null): void {
    this.present(data, defaultLayer, token, null);
  }

  /** show(), with the comparison the numerics view draws (null: none, the one before forgotten). */
  private present(data: PanelData, defaultLayer: number, token: number | null | undefined, comparison: ComparisonParams | null): void {
    // Leaving a comparison for other data: its numerics tab, opened for it, gives way to the main view.
    const numerics = this.frames.find((f) => f.spec.id === 'numerics');
    const leaving = this.comparisonShown !== null && comparison === null && !!numerics && this.tabShown(numerics.spec.area) === 'numerics';
    this.comparisonShown = comparison;
    if (leaving) this.selectTab('heatmap');
    this.data = data;
    this.overviewArea.hidden = !data.long;
    this.interventions.showRun(data.inspection.kind === 'run' ? data.inspection.id : null);
    const layers = data.layerNumbers;
    const labels = data.model?.layerLabels;
    this.layerSelect.replaceChildren(...layers.map((l) => option(String(l), labels?.[l] ? `${l} · ${labels[l]}` : `${l}`)));
    const cur = this.store.get();
    const layer = layers.includes(cur.layer) ? cur.layer : layers.includes(defaultLayer) ? defaultLayer : layers[0] ?? 0;
    const selected = token !== undefined ? token : cur.token !== null && cur.token < data.inspection.length ? cur.token : null;
    const ins = data.inspection;
    // A long run's window keeps the channel: the same layer and its channels, other tokens.
    this.store.set({ layer, token: selected, viewport: null, ...(data.long ? { window: [ins.offset, ins.offset + ins.length] as const } : { channel: null, window: null }) });
    this.layerSelect.value = String(layer);
    const m = data.model;
    const tokens = data.long ? `${data.long.run.tokens} tokens, window ${ins.offset}–${ins.offset + ins.length - 1}` : `${ins.length} tokens`;
    const parts = [data.inspection.title, ...(m ? [m.name] : []), `${layers.length} layer${layers.length === 1 ? '' : 's'}`, tokens];
    this.titleEl.textContent = `Mamba Scope — ${parts.join(' · ')}`;
    // Dumps without layer internals open on the tensor browser.
    if (data.inspection.kind === 'dump' && !data.inspection.layers.some((l) => l.tensors.delta)) this.selectTab('tensors');
    this.showAttentionOfAttentionLayer();
    for (const f of this.frames) f.refresh(data, this.store.get(), null);
  }

  get current(): PanelData | null {
    return this.data;
  }

  setAnnotations(runId: string, annotations: readonly Annotation[], suggestions: readonly AnnotationSuggestion[]): void {
    if (this.runId !== runId) return;
    this.annotationList = annotations;
    this.suggestionList = suggestions;
    for (const f of this.frames) if (f.spec.id === 'tokens' || f.spec.id === 'annotations') f.refresh(this.data, this.store.get(), null);
  }

  /** Shows a comparison of two dumps: file a's data in every view, the differences in the numerics view. */
  showComparison(data: PanelData, comparison: ComparisonParams, defaultLayer: number): void {
    this.present(data, defaultLayer, undefined, comparison);
    this.selectTab('numerics');
  }

  setBackendLabel(text: string, failed = false): void {
    this.backendEl.textContent = text;
    this.backendEl.classList.toggle('failed', failed);
  }

  /** Shows a long run's window recompute (`text`, and Cancel calling `cancel`), or hides it (null). */
  setLongJob(text: string | null, cancel?: () => void): void {
    this.longJob.bar.hidden = text === null;
    this.longJob.text.textContent = text ?? '';
    this.longJob.cancel = cancel ?? (() => undefined);
  }

  setStatus(text: string, kind: 'info' | 'error' = 'info'): void {
    this.statusEl.textContent = text;
    this.statusEl.dataset.kind = kind;
  }

  /** The run shown: a long run's window data names its run (the host's runId), not the window. */
  get runId(): string | null {
    return this.data?.runId ?? null;
  }

  describe(base: Omit<PanelDescription, 'views' | 'selection' | 'runId' | 'memory' | 'long'>, memory: Omit<PanelDescription['memory'], 'keptBytes'>): PanelDescription {
    const s = this.store.get();
    const runId = this.runId;
    const ins = this.data?.inspection;
    const long = this.data?.long;
    // Tokens in the sample's positions: a long run's window starts at its offset.
    const token = s.token === null || !ins ? s.token : s.token + ins.offset;
    return {
      ...base,
      runId,
      selection: runId === null ? null : { runId, layer: s.layer, token, channel: s.channel },
      long: long && ins ? { tokens: long.run.tokens, window: [ins.offset, ins.offset + ins.length], fullResolution: long.fullResolution } : null,
      memory: { keptBytes: this.data?.keptBytes ?? 0, ...memory },
      views: Object.fromEntries(this.frames.map((f) => [f.spec.id, f.describe()])),
    };
  }

  /** The bytes of a view's export; `viewId` defaults to the view used last. */
  async exportBytes(kind: ExportKind, viewId = this.activeView): Promise<ExportData> {
    const frame = this.frames.find((f) => f.spec.id === viewId);
    if (!frame) throw new ExportError(`there is no view "${viewId}" (views: ${this.frames.map((f) => f.spec.id).join(', ')})`);
    const view = frame.current;
    if (!view) throw new ExportError(`the ${frame.spec.title} view shows no data to export`);
    const s = this.store.get();
    return exportView(view, viewId, kind, `layer${s.layer}`);
  }

  private async exportAndSave(kind: ExportKind): Promise<void> {
    try {
      await this.hooks.save(await this.exportBytes(kind));
    } catch (e) {
      this.setStatus(`Export failed: ${e instanceof Error ? e.message : String(e)}`, 'error');
    }
  }

  private stepLayer(step: number): void {
    const layers = this.data?.layerNumbers ?? [];
    const i = layers.indexOf(this.store.get().layer);
    const next = layers[Math.max(0, Math.min(layers.length - 1, i + step))];
    if (next !== undefined) this.store.set({ layer: next });
  }

  /** One view: the frame itself; several: tabs, and only the visible tab's frame updates. */
  private fillArea(area: Area, container: HTMLElement): void {
    const frames = this.frames.filter((f) => f.spec.area === area);
    if (frames.length === 1) {
      container.append(frames[0].element);
      return;
    }
    const tabs = document.createElement('vscode-tabs') as VscodeTabs;
    tabs.setAttribute('aria-label', `${area} views`);
    for (const f of frames) {
      const header = document.createElement('vscode-tab-header');
      header.setAttribute('slot', 'header');
      header.textContent = f.spec.title;
      header.dataset.view = f.spec.id;
      const panel = document.createElement('vscode-tab-panel');
      panel.append(f.element);
      tabs.append(header, panel);
    }
    const sync = (index: number) => frames.forEach((f, i) => f.setVisible(i === index));
    tabs.addEventListener('vsc-tabs-select', (e) => {
      const index = (e as CustomEvent<{ selectedIndex: number }>).detail.selectedIndex;
      sync(index);
      this.activeView = frames[index].spec.id;
    });
    sync(0);
    this.tabs.set(area, tabs);
    container.append(tabs);
  }

  /**
   * On a hybrid's attention layer the Δ heatmap and the gates have nothing to draw: when one of
   * them is the main tab, the attention tab (the layer's own pattern) takes its place.
   */
  private showAttentionOfAttentionLayer(): void {
    const rec = this.data?.record(this.store.get().layer);
    if (!rec?.tensors.attn_pattern || rec.tensors.delta) return;
    const shown = this.tabShown('main');
    if (shown === 'heatmap' || shown === 'gates') this.selectTab('attention');
  }

  /** The view whose tab is selected in `area`. */
  private tabShown(area: Area): string | undefined {
    return this.frames.filter((f) => f.spec.area === area)[this.tabs.get(area)?.selectedIndex ?? 0]?.spec.id;
  }

  /** Shows the tab of a view (a dump without internals opens on the tensor browser). */
  selectTab(viewId: string): void {
    const frame = this.frames.find((f) => f.spec.id === viewId);
    const tabs = frame && this.tabs.get(frame.spec.area);
    if (!frame || !tabs) return;
    const index = this.frames.filter((f) => f.spec.area === frame.spec.area).indexOf(frame);
    tabs.selectedIndex = index;
    this.frames.filter((f) => f.spec.area === frame.spec.area).forEach((f, i) => f.setVisible(i === index));
    this.activeView = viewId;
  }
}

/** The running causal job in the header: what it does, how far it is, and its Cancel button; hidden when none runs. */
function jobBar(session: InterventionSession): HTMLElement {
  const bar = el('span', 'job-bar');
  bar.setAttribute('role', 'status');
  const text = el('span', 'job-text');
  const progress = document.createElement('progress');
  progress.className = 'job-progress';
  const cancel = button('Cancel', 'Cancel the running intervention, sweep or check', () => session.cancel());
  cancel.classList.add('job-cancel');
  bar.append(text, progress, cancel);
  const show = () => {
    const job = session.job;
    bar.hidden = !job;
    if (!job) return;
    const p = job.progress;
    text.textContent = p ? `${job.label}: ${p.stage}${p.total > 1 ? ` ${p.done}/${p.total}` : ''}` : `${job.label}…`;
    if (p && p.total > 0) {
      progress.max = p.total;
      progress.value = p.done;
    } else progress.removeAttribute('value');
  };
  session.subscribe(show);
  show();
  return bar;
}

/** The window recompute's line in the header: hidden until App.setLongJob shows it. */
function longJobBar(): { bar: HTMLElement; text: HTMLElement; cancel: () => void } {
  const bar = el('span', 'job-bar long-job');
  bar.setAttribute('role', 'status');
  bar.hidden = true;
  const text = el('span', 'job-text');
  const progress = document.createElement('progress');
  progress.className = 'job-progress';
  const job = { bar, text, cancel: () => undefined };
  const cancel = button('Cancel', 'Cancel the recompute of the window in view', () => job.cancel());
  cancel.classList.add('job-cancel');
  bar.append(text, progress, cancel);
  return job;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.className = className;
  return e;
}

function option(value: string, label: string): HTMLElement {
  const o = document.createElement('vscode-option');
  o.setAttribute('value', value);
  o.textContent = label;
  return o;
}

function select(label: string, options: readonly (readonly [string, string])[], onChange: (value: string) => void): VscodeSingleSelect {
  const s = document.createElement('vscode-single-select') as VscodeSingleSelect;
  s.setAttribute('aria-label', label);
  s.append(...options.map(([v, l]) => option(v, l)));
  s.addEventListener('change', () => onChange(s.value));
  return s;
}

function labelled(text: string, ...controls: HTMLElement[]): HTMLElement {
  const group = el('div', 'control');
  group.setAttribute('role', 'group');
  group.setAttribute('aria-label', text);
  const label = el('span', 'control-label');
  label.textContent = text;
  group.append(label, ...controls);
  return group;
}
