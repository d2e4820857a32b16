/**
 * The one heatmap renderer every view uses (Δ, gates, state, dump tensors, later errors and
 * attention). Values become pixels on a 2-D canvas at display resolution, never one DOM node per
 * cell; a second canvas on top carries what changes on hover (crosshair, hovered cell, markers),
 * so moving the mouse never redraws the data.
 *
 * Drawing many cells into one pixel keeps, per pixel, the cell farthest from the colour scale's
 * neutral point (the low end for sequential maps, 0 for diverging ones), and NaN wins over
 * everything: a single spike or a single NaN in a 2048 × 1536 tensor stays visible when zoomed
 * out, which plain image downscaling would drop. The tooltip names the cell that pixel shows.
 *
 * The scale mode (linear, log, per-row; valueScale.ts) decides the values that are coloured; the
 * tooltip always gives the raw value.
 */
import { colormapLut, isDiverging, LUT_SIZE, NON_FINITE_RGB, packRgba } from './colormaps';
import type { Colormap } from '../../src/protocol';
import { formatValue } from './format';
import { Legend } from './legend';
import { placeTooltip } from './tooltip';
import { scaleValues, type ScaleMode, type ScaledValues } from './valueScale';

/** A 2-D view of a typed array: value(x, y) = data[x·xStride + y·yStride]. */
export interface HeatmapData {
  readonly data: Float32Array | Float64Array;
  /** Cells along x (tokens for the tokens × channels views). */
  readonly width: number;
  /** Cells along y. */
  readonly height: number;
  readonly xStride: number;
  readonly yStride: number;
}

/** The visible window in cell units: x in [x0, x1), y in [y0, y1) (display rows). */
export interface Viewport {
  readonly x0: number;
  readonly x1: number;
  readonly y0: number;
  readonly y1: number;
}

/** A labelled cell drawn over the data (the first non-finite value). */
export interface HeatmapMarker {
  readonly x: number;
  readonly y: number;
  readonly label: string;
}

export interface HeatmapOptions {
  /** Accessible name: "Δ heatmap, layer 2". */
  readonly label: string;
  readonly xName: string;
  readonly yName: string;
  /** Name of the value in tooltips and the legend: "Δ". */
  readonly valueName: string;
  /** Click (or Enter) on a cell. */
  readonly onSelect?: (x: number, y: number) => void;
  /** Extra tooltip lines for a cell (token text, related quantities). */
  readonly describeCell?: (x: number, y: number) => readonly string[];
  /** How an x / y index reads in the tooltip and the axis caption ("12 ‘def’"). */
  readonly xLabel?: (x: number) => string;
  readonly yLabel?: (y: number) => string;
  /** Called after the user zooms or pans (with the data's row count), so views sharing an axis can follow. */
  readonly onViewport?: (v: Viewport, rows: number) => void;
}

export interface HeatmapDescription {
  readonly drawn: boolean;
  readonly distinctColors: number;
  readonly min: number;
  readonly max: number;
}

const NON_FINITE = packRgba(...NON_FINITE_RGB);
const MIN_VISIBLE_CELLS = 2;
/** CSS pixels between the cursor and the tooltip. */
const CURSOR_CLEARANCE = 14;
/** User Timing names, read by the browser tests and visible in DevTools' performance panel. */
export const FRAME_MEASURES = { base: 'mamba-scope:heatmap-base', overlay: 'mamba-scope:heatmap-overlay' } as const;
let measuresRecorded = 0;

export class Heatmap {
  readonly element: HTMLElement;
  private readonly plot: HTMLElement;
  private readonly base: HTMLCanvasElement;
  private readonly overlay: HTMLCanvasElement;
  private readonly tooltip: HTMLElement;
  private readonly caption: HTMLElement;
  private readonly legend: Legend;
  private readonly resizeObserver: ResizeObserver;

  private source: HeatmapData | null = null;
  private rowOrder: Int32Array | null = null;
  /** Values in display order, row-major [height, width]: contiguous reads while drawing. */
  private cells: Float32Array = new Float32Array(0);
  /** Display row of each data row (inverse of rowOrder). */
  private rowOfData: Int32Array = new Int32Array(0);
  private dataMin = NaN;
  private dataMax = NaN;
  private nonFinite = 0;
  private colormap: Colormap = 'viridis';
  private scaleMode: ScaleMode = 'linear';
  /** The values as coloured and their scale; null until the next frame computes them. */
  private scaled: ScaledValues | null = null;
  private viewport: Viewport | null = null;
  private crosshair: { x: number | null; y: number | null } = { x: null, y: null };
  private markers: readonly HeatmapMarker[] = [];
  /** Markers a view sets (a comparison's first divergence), drawn with the automatic ones. */
  private viewMarkers: readonly HeatmapMarker[] = [];
  private hover: { px: number; py: number } | null = null;
  private label: string;
  private valueName: string;
  private yName: string;

  private image: ImageData | null = null;
  /** Index into `cells` of the cell each pixel shows (−1: none), for the tooltip. */
  private pixelCell: Int32Array = new Int32Array(0);
  private baseDirty = true;
  private overlayDirty = true;
  private frame = 0;
  private drag: { x: number; y: number; v: Viewport; moved: boolean } | null = null;

  constructor(private readonly options: HeatmapOptions) {
    this.label = options.label;
    this.valueName = options.valueName;
    this.yName = options.yName;
    this.element = el('div', 'heatmap');
    this.plot = el('div', 'heatmap-plot');
    this.plot.tabIndex = 0;
    this.plot.setAttribute('role', 'img');
    this.plot.setAttribute('aria-roledescription', 'heatmap');
    this.plot.title = 'Drag or Shift+arrows to pan, wheel or +/− to zoom, 0 or double-click to reset; click to select. Keys anywhere: ←/→ token, ↑/↓ layer, [/] channel, Esc clears';
    this.base = el('canvas', 'heatmap-base');
    this.overlay = el('canvas', 'heatmap-overlay');
    this.overlay.setAttribute('aria-hidden', 'true');
    this.tooltip = el('div', 'heatmap-tooltip');
    this.tooltip.setAttribute('role', 'tooltip');
    this.tooltip.hidden = true;
    this.plot.append(this.base, this.overlay, this.tooltip);
    this.caption = el('div', 'heatmap-caption');
    this.legend = new Legend(options.valueName);
    const footer = el('div', 'heatmap-footer');
    footer.append(this.caption, this.legend.element);
    this.element.append(this.plot, footer);
    this.bindInput();
    this.resizeObserver = new ResizeObserver(() => this.invalidate(true));
    this.resizeObserver.observe(this.plot);
    this.updateLabel();
  }

  /** New values (or null: nothing to show). Keeps the viewport if the shape is unchanged. */
  setData(data: HeatmapData | null, rowOrder: Int32Array | null = null): void {
    const sameShape = data && this.source && data.width === this.source.width && data.height === this.source.height;
    this.source = data;
    if (!sameShape) this.viewport = null;
    this.rowOrder = rowOrder;
    this.prepare();
  }

  /** Renames what is shown (the same heatmap showing another metric or layer). */
  setLabels(label: string, valueName: string, yName: string): void {
    this.label = label;
    this.valueName = valueName;
    this.yName = yName;
    this.legend.setName(valueName);
    this.rescale(); // the legend under a log or per-row scale names the value and the rows
  }

  /** Channel order: display row r shows data row order[r]; null = natural order. */
  setRowOrder(order: Int32Array | null): void {
    if (order === this.rowOrder) return;
    this.rowOrder = order;
    this.prepare();
  }

  setColormap(name: Colormap): void {
    if (name === this.colormap) return;
    this.colormap = name;
    this.rescale();
  }

  setScaleMode(mode: ScaleMode): void {
    if (mode === this.scaleMode) return;
    this.scaleMode = mode;
    this.rescale();
  }

  /** Selected cell in data coordinates (y = data row); null hides that line. */
  setCrosshair(x: number | null, y: number | null): void {
    if (x === this.crosshair.x && y === this.crosshair.y) return;
    this.crosshair = { x, y };
    this.invalidate(false);
    this.updateLabel();
  }

  /** Labelled cells to ring besides the first non-finite value (data coordinates). */
  setMarkers(markers: readonly HeatmapMarker[]): void {
    this.viewMarkers = markers;
    this.invalidate(false);
  }

  /** Shows this window (from a linked view); out-of-range values are clamped. */
  setViewport(v: Viewport | null): void {
    const next = v && this.source ? this.clampViewport(v) : null;
    const cur = this.viewport;
    if (next === cur || (next && cur && next.x0 === cur.x0 && next.x1 === cur.x1 && next.y0 === cur.y0 && next.y1 === cur.y1)) return;
    this.viewport = next;
    this.invalidate(true);
  }

  /** The whole-cell window shown now, in data rows when unordered: what exports cut out. */
  visibleCells(): { x0: number; x1: number; rows: Int32Array } | null {
    if (!this.source) return null;
    const v = this.currentViewport();
    const x0 = Math.floor(v.x0), x1 = Math.ceil(v.x1);
    const y0 = Math.floor(v.y0), y1 = Math.ceil(v.y1);
    const rows = new Int32Array(y1 - y0);
    for (let r = y0; r < y1; r++) rows[r - y0] = this.rowOrder ? this.rowOrder[r] : r;
    return { x0, x1, rows };
  }

  describe(): HeatmapDescription {
    const drawn = !!this.image && !!this.source;
    let distinct = 0;
    if (drawn && this.image) distinct = new Set(new Uint32Array(this.image.data.buffer)).size;
    return { drawn, distinctColors: distinct, min: this.dataMin, max: this.dataMax };
  }

  /** Plot + legend on one canvas, for PNG export. */
  snapshot(): HTMLCanvasElement {
    this.flush();
    const legend = this.legend.snapshot();
    const out = document.createElement('canvas');
    out.width = this.base.width;
    out.height = this.base.height + legend.height + 4;
    const ctx = out.getContext('2d')!;
    ctx.fillStyle = getComputedStyle(this.element).getPropertyValue('--vscode-editor-background').trim() || '#ffffff';
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.drawImage(this.base, 0, 0);
    ctx.drawImage(this.overlay, 0, 0);
    ctx.drawImage(legend, 0, this.base.height + 4);
    return out;
  }

  dispose(): void {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.frame);
    this.element.remove();
  }

  // -------------------------------------------------------------------------------------------
  // Data preparation (once per data / order change, never per frame)

  private prepare(): void {
    const s = this.source;
    if (!s) {
      this.cells = new Float32Array(0);
      this.dataMin = this.dataMax = NaN;
      this.nonFinite = 0;
      this.markers = [];
      this.rescale();
      return;
    }
    const { width: W, height: H, data, xStride, yStride } = s;
    if (this.rowOrder && this.rowOrder.length !== H) throw new Error(`row order has ${this.rowOrder.length} rows, the data ${H}`);
    const cells = this.cells.length === W * H ? this.cells : new Float32Array(W * H);
    const rowOfData = new Int32Array(H);
    let min = Infinity, max = -Infinity, nonFinite = 0;
    // The first non-finite value in the array's own (row-major) order gets a marker: where a NaN starts.
    let first: { index: number; x: number; y: number; v: number } | null = null;
    for (let r = 0; r < H; r++) {
      const y = this.rowOrder ? this.rowOrder[r] : r;
      rowOfData[y] = r;
      const src = y * yStride;
      const dst = r * W;
      for (let x = 0; x < W; x++) {
        const v = data[src + x * xStride];
        cells[dst + x] = v;
        if (v < min) min = v;
        if (v > max) max = v;
        if (v - v !== 0) {
          nonFinite++; // NaN and ±Inf
          const index = src + x * xStride;
          if (!first || index < first.index) first = { index, x, y, v };
        }
      }
    }
    this.cells = cells;
    this.rowOfData = rowOfData;
    this.nonFinite = nonFinite;
    this.markers = first ? [{ x: first.x, y: first.y, label: `first ${Number.isNaN(first.v) ? 'NaN' : 'Inf'}: ${this.options.xName} ${first.x}, ${this.yName} ${first.y}` }] : [];
    // NaN never wins a comparison, so min/max are over the finite values and ±Inf.
    this.dataMin = Number.isFinite(min) ? min : finiteExtreme(cells, 'min');
    this.dataMax = Number.isFinite(max) ? max : finiteExtreme(cells, 'max');
    this.rescale();
  }

  /** The colours depend on data, colormap and scale mode: recomputed on the next frame, once. */
  private rescale(): void {
    this.scaled = null;
    this.updateLabel();
    this.invalidate(true);
  }

  private scaledValues(): ScaledValues | null {
    if (!this.scaled && this.source) {
      const names = { value: this.valueName, row: this.yName, column: this.options.xName };
      this.scaled = scaleValues(this.cells, this.source.width, this.dataMin, this.dataMax, this.scaleMode, isDiverging(this.colormap), names);
      this.legend.update(this.colormap, this.scaled.scale, this.dataMin, this.dataMax, this.nonFinite, this.scaled.legend);
    }
    if (!this.source) this.legend.update(this.colormap, null, NaN, NaN);
    return this.scaled;
  }

  // -------------------------------------------------------------------------------------------
  // Drawing

  private invalidate(base: boolean): void {
    if (base) this.baseDirty = true;
    this.overlayDirty = true;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  /** Draws what is dirty now (also called before a snapshot). */
  private flush(): void {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    if (this.resizeCanvases()) this.baseDirty = true;
    if (!this.scaled) this.baseDirty = true;
    if (this.baseDirty) {
      const t0 = performance.now();
      this.drawBase();
      this.baseDirty = false;
      recordFrame(FRAME_MEASURES.base, t0);
    }
    if (this.overlayDirty) {
      const t0 = performance.now();
      this.drawOverlay();
      this.overlayDirty = false;
      recordFrame(FRAME_MEASURES.overlay, t0);
    }
  }

  private resizeCanvases(): boolean {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(0, Math.round(this.plot.clientWidth * dpr));
    const h = Math.max(0, Math.round(this.plot.clientHeight * dpr));
    if (w === this.base.width && h === this.base.height) return false;
    for (const c of [this.base, this.overlay]) {
      c.width = w;
      c.height = h;
    }
    return true;
  }

  private currentViewport(): Viewport {
    const s = this.source!;
    return this.viewport ?? { x0: 0, x1: s.width, y0: 0, y1: s.height };
  }

  private drawBase(): void {
    const ctx = this.base.getContext('2d')!;
    const W = this.base.width, H = this.base.height;
    const s = this.source, scaled = this.scaledValues();
    if (!s || !scaled || W === 0 || H === 0 || s.width === 0 || s.height === 0) {
      ctx.clearRect(0, 0, W, H);
      this.image = null;
      return;
    }
    if (!this.image || this.image.width !== W || this.image.height !== H) {
      this.image = ctx.createImageData(W, H);
      this.pixelCell = new Int32Array(W * H);
    }
    const v = this.currentViewport();
    const cols = spans(v.x0, v.x1, W, s.width);
    const rows = spans(v.y0, v.y1, H, s.height);
    const out = new Uint32Array(this.image.data.buffer);
    const lut = colormapLut(this.colormap);
    const { lo, hi, pivot } = scaled.scale;
    const k = hi > lo ? (LUT_SIZE - 1) / (hi - lo) : 0;
    // What is coloured (and wins a pixel) is the scaled value; pixelCell indexes both arrays alike.
    const cells = scaled.values, pixelCell = this.pixelCell, width = s.width;
    const bestDev = new Float64Array(W);
    const bestIdx = new Int32Array(W);
    for (let py = 0; py < H; py++) {
      bestDev.fill(-1);
      bestIdx.fill(-1);
      for (let r = rows.start[py], rEnd = rows.end[py]; r < rEnd; r++) {
        const rowBase = r * width;
        for (let px = 0; px < W; px++) {
          let bd = bestDev[px], bi = bestIdx[px];
          for (let i = rowBase + cols.start[px], e = rowBase + cols.end[px]; i < e; i++) {
            const val = cells[i];
            if (val !== val) { bd = Infinity; bi = i; break; } // NaN: always shown
            const d = Math.abs(val - pivot);
            if (d > bd) { bd = d; bi = i; }
          }
          bestDev[px] = bd;
          bestIdx[px] = bi;
        }
      }
      const o = py * W;
      for (let px = 0; px < W; px++) {
        const i = bestIdx[px];
        pixelCell[o + px] = i;
        const val = cells[i];
        if (!Number.isFinite(val)) out[o + px] = NON_FINITE;
        else {
          const j = (val - lo) * k;
          out[o + px] = lut[j <= 0 ? 0 : j >= LUT_SIZE - 1 ? LUT_SIZE - 1 : Math.round(j)];
        }
      }
    }
    ctx.putImageData(this.image, 0, 0);
    this.updateCaption(v);
  }

  private drawOverlay(): void {
    const ctx = this.overlay.getContext('2d')!;
    const W = this.overlay.width, H = this.overlay.height;
    ctx.clearRect(0, 0, W, H);
    const s = this.source;
    if (!s || !this.image) return;
    const v = this.currentViewport();
    const sx = W / (v.x1 - v.x0), sy = H / (v.y1 - v.y0);
    // A 1-px white line with a dark halo reads on every colormap; wide cells get both edges.
    const line = (vertical: boolean, at: number) => {
      const pos = Math.round(at);
      ctx.fillStyle = 'rgba(0, 0, 0, 0.6)';
      if (vertical) ctx.fillRect(pos - 1, 0, 3, H);
      else ctx.fillRect(0, pos - 1, W, 3);
      ctx.fillStyle = 'rgba(255, 255, 255, 0.95)';
      if (vertical) ctx.fillRect(pos, 0, 1, H);
      else ctx.fillRect(0, pos, W, 1);
    };
    const mark = (vertical: boolean, start: number, size: number) => {
      if (size >= 6) {
        line(vertical, start);
        line(vertical, start + size - 1);
      } else line(vertical, start + size / 2);
    };
    const { x, y } = this.crosshair;
    if (x !== null && x >= 0 && x < s.width) mark(true, (x - v.x0) * sx, sx);
    if (y !== null && y >= 0 && y < s.height) mark(false, (this.rowOfData[y] - v.y0) * sy, sy);
    for (const m of [...this.markers, ...this.viewMarkers]) {
      const cx = (m.x + 0.5 - v.x0) * sx, cy = (this.rowOfData[m.y] + 0.5 - v.y0) * sy;
      if (cx < 0 || cx > W || cy < 0 || cy > H) continue;
      ctx.strokeStyle = '#ff00ff';
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(cx, cy, 6, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.fillStyle = '#ff00ff';
      ctx.font = '11px sans-serif';
      ctx.fillText(m.label, Math.min(cx + 8, W - 80), Math.max(12, cy - 8));
    }
    const cell = this.hoveredCell();
    if (cell) {
      const x0 = (cell.x - v.x0) * sx, y0 = (cell.r - v.y0) * sy;
      ctx.strokeStyle = '#000';
      ctx.lineWidth = 3;
      ctx.strokeRect(x0, y0, Math.max(sx, 2), Math.max(sy, 2));
      ctx.strokeStyle = '#fff';
      ctx.lineWidth = 1;
      ctx.strokeRect(x0, y0, Math.max(sx, 2), Math.max(sy, 2));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Interaction

  /** The cell drawn at the hovered pixel: x, display row r and data row y. */
  private hoveredCell(): { x: number; r: number; y: number } | null {
    if (!this.hover || !this.source || !this.image) return null;
    const { px, py } = this.hover;
    const W = this.image.width;
    if (px < 0 || py < 0 || px >= W || py >= this.image.height) return null;
    const i = this.pixelCell[py * W + px];
    if (i < 0) return null;
    const r = Math.floor(i / this.source.width);
    return { x: i % this.source.width, r, y: this.rowOrder ? this.rowOrder[r] : r };
  }

  private pixelAt(e: MouseEvent): { px: number; py: number } {
    const rect = this.base.getBoundingClientRect();
    const dpr = this.base.width / Math.max(1, rect.width);
    return { px: Math.floor((e.clientX - rect.left) * dpr), py: Math.floor((e.clientY - rect.top) * dpr) };
  }

  private bindInput(): void {
    const p = this.plot;
    p.addEventListener('pointermove', (e) => {
      if (this.drag) {
        const dx = e.clientX - this.drag.x, dy = e.clientY - this.drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) this.drag.moved = true;
        if (this.drag.moved) this.panFrom(this.drag.v, dx, dy);
      }
      this.hover = this.pixelAt(e);
      this.showTooltip(e);
      this.invalidate(false);
    });
    p.addEventListener('pointerleave', () => {
      this.hover = null;
      this.tooltip.hidden = true;
      this.invalidate(false);
    });
    p.addEventListener('pointerdown', (e) => {
      if (!this.source || e.button !== 0) return;
      p.setPointerCapture(e.pointerId);
      this.drag = { x: e.clientX, y: e.clientY, v: this.currentViewport(), moved: false };
    });
    p.addEventListener('pointerup', (e) => {
      const drag = this.drag;
      this.drag = null;
      if (!drag || drag.moved) return;
      this.hover = this.pixelAt(e);
      const cell = this.hoveredCell();
      if (cell) this.options.onSelect?.(cell.x, cell.y);
    });
    p.addEventListener('wheel', (e) => {
      if (!this.source) return;
      e.preventDefault();
      const rect = this.base.getBoundingClientRect();
      const fx = (e.clientX - rect.left) / Math.max(1, rect.width), fy = (e.clientY - rect.top) / Math.max(1, rect.height);
      this.zoom(Math.pow(1.0015, e.deltaY), fx, fy);
    }, { passive: false });
    p.addEventListener('dblclick', () => this.userViewport(null));
    p.addEventListener('keydown', (e) => this.onKey(e));
  }

  private onKey(e: KeyboardEvent): void {
    if (!this.source) return;
    const v = this.currentViewport();
    const stepX = (v.x1 - v.x0) * 0.1, stepY = (v.y1 - v.y0) * 0.1;
    let handled = true;
    if (e.key === '+' || e.key === '=') this.zoom(1 / 1.25, 0.5, 0.5);
    else if (e.key === '-' || e.key === '_') this.zoom(1.25, 0.5, 0.5);
    else if (e.key === '0') this.userViewport(null);
    else if (e.shiftKey && e.key === 'ArrowLeft') this.userViewport({ ...v, x0: v.x0 - stepX, x1: v.x1 - stepX });
    else if (e.shiftKey && e.key === 'ArrowRight') this.userViewport({ ...v, x0: v.x0 + stepX, x1: v.x1 + stepX });
    else if (e.shiftKey && e.key === 'ArrowUp') this.userViewport({ ...v, y0: v.y0 - stepY, y1: v.y1 - stepY });
    else if (e.shiftKey && e.key === 'ArrowDown') this.userViewport({ ...v, y0: v.y0 + stepY, y1: v.y1 + stepY });
    else if (e.key === 'Enter' && this.crosshair.x !== null) this.options.onSelect?.(this.crosshair.x, this.crosshair.y ?? 0);
    else handled = false;
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  }

  /** Zooms by `factor` (< 1 = in) keeping the point at fractions (fx, fy) of the plot fixed. */
  private zoom(factor: number, fx: number, fy: number): void {
    const v = this.currentViewport();
    const cx = v.x0 + fx * (v.x1 - v.x0), cy = v.y0 + fy * (v.y1 - v.y0);
    const w = (v.x1 - v.x0) * factor, h = (v.y1 - v.y0) * factor;
    this.userViewport({ x0: cx - fx * w, x1: cx + (1 - fx) * w, y0: cy - fy * h, y1: cy + (1 - fy) * h });
  }

  private panFrom(start: Viewport, dxPx: number, dyPx: number): void {
    const rect = this.base.getBoundingClientRect();
    const dx = (dxPx / Math.max(1, rect.width)) * (start.x1 - start.x0);
    const dy = (dyPx / Math.max(1, rect.height)) * (start.y1 - start.y0);
    this.userViewport({ x0: start.x0 - dx, x1: start.x1 - dx, y0: start.y0 - dy, y1: start.y1 - dy });
  }

  private userViewport(v: Viewport | null): void {
    this.setViewport(v);
    this.options.onViewport?.(this.currentViewport(), this.source?.height ?? 0);
  }

  private clampViewport(v: Viewport): Viewport {
    const s = this.source!;
    const axis = (a: number, b: number, n: number): [number, number] => {
      const len = Math.min(n, Math.max(Math.min(MIN_VISIBLE_CELLS, n), b - a));
      const start = Math.min(Math.max(0, a), n - len);
      return [start, start + len];
    };
    const [x0, x1] = axis(v.x0, v.x1, s.width);
    const [y0, y1] = axis(v.y0, v.y1, s.height);
    return { x0, x1, y0, y1 };
  }

  private showTooltip(e: MouseEvent): void {
    const cell = this.hoveredCell();
    if (!cell || this.drag?.moved) {
      this.tooltip.hidden = true;
      return;
    }
    const o = this.options;
    const value = this.cells[cell.r * this.source!.width + cell.x];
    const lines = [
      `${o.xName} ${o.xLabel ? o.xLabel(cell.x) : cell.x} · ${this.yName} ${o.yLabel ? o.yLabel(cell.y) : cell.y}`,
      `${this.valueName} = ${formatValue(value)}`,
      ...(o.describeCell?.(cell.x, cell.y) ?? []),
    ];
    this.tooltip.replaceChildren(...lines.map((l) => Object.assign(el('div', 'heatmap-tooltip-line'), { textContent: l })));
    this.tooltip.dataset.x = String(cell.x);
    this.tooltip.dataset.y = String(cell.y);
    this.tooltip.dataset.value = String(value);
    this.tooltip.hidden = false;
    // Clear of the cursor: below-right of it, or above it near the bottom edge.
    placeTooltip(this.tooltip, { left: e.clientX + CURSOR_CLEARANCE, top: e.clientY - CURSOR_CLEARANCE, bottom: e.clientY + CURSOR_CLEARANCE });
  }

  private updateCaption(v: Viewport): void {
    const o = this.options, s = this.source!;
    const x0 = Math.floor(v.x0), x1 = Math.ceil(v.x1) - 1, y0 = Math.floor(v.y0), y1 = Math.ceil(v.y1) - 1;
    const ordered = this.rowOrder ? ` (rows ${y0}–${y1} of ${s.height} in the chosen order)` : ` ${y0}–${y1} of ${s.height}`;
    this.caption.textContent = `${o.xName}s ${x0}–${x1} of ${s.width} × ${this.yName}s${ordered}`;
  }

  private updateLabel(): void {
    const o = this.options, s = this.source;
    const parts = [this.label];
    if (!s) parts.push('no data');
    else {
      parts.push(`${s.width} ${o.xName}s × ${s.height} ${this.yName}s`, `${this.valueName} from ${formatValue(this.dataMin)} to ${formatValue(this.dataMax)}`);
      if (this.crosshair.x !== null) parts.push(`selected ${o.xName} ${this.crosshair.x}`);
    }
    this.plot.setAttribute('aria-label', parts.join(', '));
  }
}

/**
 * Pixel → cell spans along one axis: pixel p covers cells [start[p], end[p]). When cells
 * outnumber pixels the spans partition the window, so every cell belongs to exactly one pixel;
 * when pixels outnumber cells each pixel gets the one cell under its left edge.
 */
function spans(a: number, b: number, pixels: number, cells: number): { start: Int32Array; end: Int32Array } {
  const start = new Int32Array(pixels), end = new Int32Array(pixels);
  const per = (b - a) / pixels;
  for (let p = 0; p < pixels; p++) {
    start[p] = Math.min(cells - 1, Math.floor(a + p * per));
    const next = p === pixels - 1 ? Math.ceil(b) : Math.floor(a + (p + 1) * per);
    end[p] = Math.max(start[p] + 1, Math.min(cells, next));
  }
  return { start, end };
}

function finiteExtreme(a: Float32Array, which: 'min' | 'max'): number {
  let m = which === 'min' ? Infinity : -Infinity;
  for (const v of a) if (Number.isFinite(v) && (which === 'min' ? v < m : v > m)) m = v;
  return Number.isFinite(m) ? m : NaN;
}

function recordFrame(name: string, start: number): void {
  // Bounded: the timeline keeps the last ~2000 frames of each kind.
  if (++measuresRecorded % 4000 === 0) {
    performance.clearMeasures(FRAME_MEASURES.base);
    performance.clearMeasures(FRAME_MEASURES.overlay);
  }
  performance.measure(name, { start, end: performance.now() });
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.className = className;
  return e;
}
