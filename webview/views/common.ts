/**
 * Pieces the views share: wiring a tokens × channels heatmap to the selection store (crosshair,
 * the shared zoom window, click-to-select), a heatmap view's colouring (colormap and its scale
 * control), token labels, tooltips of a cell, export slices, the toolbar button, and the small
 * DOM pieces of the views' forms (fields and buttons).
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import type { VscodeSingleSelect } from '@vscode-elements/elements/dist/vscode-single-select/vscode-single-select.js';
import { FULL_RESOLUTION_TOKENS } from '../../src/protocol';
import { METRIC_SYMBOL, Unavailable, type LayerAnalysis, type Matrix } from '../analysis/layerAnalysis';
import { Heatmap, type HeatmapData } from '../render/heatmap';
import { formatValue, visibleToken } from '../render/format';
import { isScaleMode, SCALE_MODE_LABELS, SCALE_MODES, type ScaleMode } from '../render/valueScale';
import type { PanelData } from '../panelData';
import type { SelectionStore, ViewState } from '../state';
import type { ExportSlice } from './view';

/** A secondary vscode-button whose title is also its accessible name. */
export function button(text: string, title: string, onClick: () => void): HTMLElement {
  const b = document.createElement('vscode-button');
  b.textContent = text;
  b.title = title;
  b.setAttribute('aria-label', title);
  b.setAttribute('secondary', '');
  b.addEventListener('click', onClick);
  return b;
}

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.className = className;
  return e;
}

/** A form field: its name, then its controls, in one label (`className` styles it per view). */
export function field(name: string, className: string, ...controls: Node[]): HTMLLabelElement {
  const l = el('label', className);
  l.append(document.createTextNode(`${name} `), ...controls);
  return l;
}

/** A plain button of a view's form or list, found by its data-action (tests, styles). */
export function actionButton(label: string, action: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.dataset.action = action;
  b.addEventListener('click', onClick);
  return b;
}

/** Token `t` of the data as people read it: its position in the whole sample (a long run's window starts at its offset) and its text. */
export function tokenLabel(data: PanelData | null, t: number): string {
  const text = data?.inspection.tokens?.[t];
  const at = t + (data?.inspection.offset ?? 0);
  return text === undefined ? String(at) : `${at} ‘${visibleToken(text)}’`;
}

/**
 * The views whose runs rerun the whole sample (interventions, the sweep, the logit lens) say in
 * one line that a long run's window is not one they work on.
 */
export function refuseLongRun(data: PanelData, what: string): void {
  if (data.long) throw new Unavailable(`${what} work on samples of up to ${FULL_RESOLUTION_TOKENS} tokens, and this one has ${data.long.run.tokens} (the views show its window at full resolution): inspect a selection of the text`);
}

/** A tokens × columns matrix shown with tokens along x. */
export function tokensAlongX(m: Matrix): HeatmapData {
  return { data: m.data, width: m.rows, height: m.cols, xStride: m.cols, yStride: 1 };
}

/** A vocabulary id as text, from the vocabulary the host sent with the model (ids alone without it). */
export function vocabText(data: PanelData, id: number): string {
  const v = data.model?.vocab?.[id];
  return v === undefined ? `#${id}` : `‘${visibleToken(v)}’`;
}

/** Tooltip lines for a (token, channel) cell: the token id and the related per-cell quantities. */
export function cellLines(data: PanelData | null, analysis: LayerAnalysis | undefined, t: number, d: number): string[] {
  const lines: string[] = [];
  const id = data?.inspection.ids?.[t];
  if (id !== undefined) lines.push(`token id ${id}`);
  if (analysis && d < analysis.channels) {
    const c = analysis.cell(t, d);
    const parts = ([['delta', c.delta], ['forget', c.forget], ['gate', c.gate], ['write', c.write]] as const)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => `${METRIC_SYMBOL[k]} ${formatValue(v!)}`);
    if (parts.length) lines.push(parts.join(' · '));
  }
  return lines;
}

export interface LinkedHeatmapOptions {
  readonly label: string;
  readonly valueName: string;
  readonly yName?: string;
  readonly store: SelectionStore;
  readonly data: () => PanelData | null;
  /** The analysis whose cells the tooltip describes (the selected layer's). */
  readonly analysis?: () => LayerAnalysis | undefined;
  /** False while the rows are not channels (Mamba-2's Δ per head): a click then selects the token only. */
  readonly rowsAreChannels?: () => boolean;
}

/** A tokens × channels heatmap that selects on click and shares its zoom window through the store. */
export function linkedHeatmap(o: LinkedHeatmapOptions): Heatmap {
  return new Heatmap({
    label: o.label,
    xName: 'token',
    yName: o.yName ?? 'channel',
    valueName: o.valueName,
    xLabel: (x) => tokenLabel(o.data(), x),
    describeCell: (x, y) => cellLines(o.data(), o.analysis?.(), x, y),
    onSelect: (x, y) => o.store.set(o.rowsAreChannels?.() === false ? { token: x } : { token: x, channel: y }),
    onViewport: (v, rows) => o.store.set({ viewport: { ...v, rows } }),
  });
}

export function scaleModeOf(state: ViewState, viewId: string): ScaleMode {
  return state.scaleModes[viewId] ?? 'linear';
}

/** The store's colormap and the view's scale mode, on a heatmap of view `viewId`. */
export function colourHeatmap(h: Heatmap, state: ViewState, viewId: string): void {
  h.setColormap(state.colormap);
  h.setScaleMode(scaleModeOf(state, viewId));
}

/**
 * The scale picker of a heatmap view (linear, log₁₀, per-row). The choice is kept per view in
 * the store, so it survives tab switches and new data, and the view redraws like on any change.
 */
export function scaleControl(store: SelectionStore, viewId: string): HTMLElement {
  const s = document.createElement('vscode-single-select') as VscodeSingleSelect;
  s.className = 'scale-mode';
  s.dataset.view = viewId;
  s.setAttribute('aria-label', 'Colour scale');
  s.title = 'How values map to colours: linear, log₁₀ (symmetric log for signed data), or each row scaled to its own min–max';
  for (const mode of SCALE_MODES) {
    const o = document.createElement('vscode-option');
    o.setAttribute('value', mode);
    o.textContent = SCALE_MODE_LABELS[mode];
    s.append(o);
  }
  const show = () => (s.value = scaleModeOf(store.get(), viewId));
  show();
  store.subscribe((_, changed) => changed.has('scaleModes') && show());
  s.addEventListener('change', () => {
    if (isScaleMode(s.value)) store.set({ scaleModes: { ...store.get().scaleModes, [viewId]: s.value } });
  });
  const label = document.createElement('label');
  label.className = 'control scale-control';
  label.append(Object.assign(document.createElement('span'), { className: 'control-label', textContent: 'Scale' }), s);
  return label;
}

/**
 * Applies the store's colormap, the view's scale, the crosshair and the shared window to a
 * heatmap. The window's rows apply only to heatmaps with as many rows (Δ of Mamba-2 has heads,
 * the gates have channels).
 */
export function syncHeatmap(h: Heatmap, state: ViewState, viewId: string, rows: number, crossY: number | null = state.channel): void {
  colourHeatmap(h, state, viewId);
  h.setCrosshair(state.token, crossY);
  const v = state.viewport;
  if (!v) h.setViewport(null);
  else if (v.rows === rows) h.setViewport(v);
  else h.setViewport({ x0: v.x0, x1: v.x1, y0: 0, y1: rows });
}

/** The visible window of a tokens-along-x heatmap as a [tokens, rows] slice of its matrix. */
export function visibleSlice(h: Heatmap, m: Matrix, name: string, data: PanelData, rowName: string): ExportSlice | null {
  const w = h.visibleCells();
  if (!w) return null;
  const T = w.x1 - w.x0, R = w.rows.length;
  const out = new Float32Array(T * R);
  for (let t = 0; t < T; t++) for (let r = 0; r < R; r++) out[t * R + r] = m.data[(w.x0 + t) * m.cols + w.rows[r]];
  return {
    name: `${name}-tokens${w.x0}-${w.x1 - 1}`,
    tensor: { shape: [T, R], data: out },
    rowLabels: Array.from({ length: T }, (_, t) => tokenLabel(data, w.x0 + t)),
    columnLabels: Array.from(w.rows, (r) => `${rowName} ${r}`),
  };
}

/** Canvases stacked top to bottom with an 8 px gap: the PNG export of a view made of several plots. */
export function stackCanvases(parts: readonly HTMLCanvasElement[]): HTMLCanvasElement {
  const out = document.createElement('canvas');
  out.width = Math.max(1, ...parts.map((c) => c.width));
  out.height = parts.reduce((h, c) => h + c.height + 8, 0);
  const g = out.getContext('2d')!;
  let y = 0;
  for (const c of parts) {
    g.drawImage(c, 0, y);
    y += c.height + 8;
  }
  return out;
}
