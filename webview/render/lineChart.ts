/**
 * A one-series line over tokens (‖h_t‖ over time) with the selected token marked. Drawn on one
 * canvas in theme colours; with more tokens than pixels each pixel column shows the min–max of
 * its tokens, so no peak disappears. A band can shade a range of x (a long run's window in view).
 */
import { formatValue } from './format';

export interface LineChartOptions {
  readonly label: string;
  readonly valueName: string;
  readonly onSelect?: (x: number) => void;
  readonly xLabel?: (x: number) => string;
  /** What the x axis counts, for the chart's label (default "tokens"). */
  readonly xName?: string;
}

export class LineChart {
  readonly element: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly readout: HTMLElement;
  private values: Float32Array | null = null;
  private marker: number | null = null;
  private band: readonly [number, number] | null = null;
  private frame = 0;
  private readonly resizeObserver: ResizeObserver;

  constructor(private readonly options: LineChartOptions) {
    this.element = document.createElement('div');
    this.element.className = 'line-chart';
    this.canvas = document.createElement('canvas');
    this.canvas.tabIndex = 0;
    this.canvas.setAttribute('role', 'img');
    this.readout = document.createElement('div');
    this.readout.className = 'line-chart-readout';
    this.element.append(this.canvas, this.readout);
    this.canvas.addEventListener('pointermove', (e) => this.showValue(this.indexAt(e)));
    this.canvas.addEventListener('click', (e) => {
      const i = this.indexAt(e);
      if (i !== null) options.onSelect?.(i);
    });
    this.resizeObserver = new ResizeObserver(() => this.invalidate());
    this.resizeObserver.observe(this.canvas);
  }

  setData(values: Float32Array | null): void {
    this.values = values;
    this.invalidate();
  }

  setMarker(x: number | null): void {
    this.marker = x;
    this.showValue(x);
    this.invalidate();
  }

  /** Shades x in [start, end); null: no band. */
  setBand(band: readonly [number, number] | null): void {
    this.band = band;
    this.invalidate();
  }

  snapshot(): HTMLCanvasElement {
    this.draw();
    return this.canvas;
  }

  dispose(): void {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.frame);
  }

  private invalidate(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  private indexAt(e: MouseEvent): number | null {
    if (!this.values?.length) return null;
    const r = this.canvas.getBoundingClientRect();
    const f = (e.clientX - r.left) / Math.max(1, r.width);
    return Math.max(0, Math.min(this.values.length - 1, Math.floor(f * this.values.length)));
  }

  private showValue(i: number | null): void {
    const v = this.values;
    const o = this.options;
    this.readout.textContent = v && i !== null && i < v.length ? `${o.xLabel ? o.xLabel(i) : i}: ${o.valueName} = ${formatValue(v[i])}` : '';
  }

  private draw(): void {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.max(1, Math.round(c.clientWidth * dpr));
    c.height = Math.max(1, Math.round(c.clientHeight * dpr));
    const g = c.getContext('2d')!;
    g.clearRect(0, 0, c.width, c.height);
    const v = this.values;
    if (!v || v.length === 0) return;
    let min = Infinity, max = -Infinity;
    for (const x of v) if (Number.isFinite(x)) { if (x < min) min = x; if (x > max) max = x; }
    if (!Number.isFinite(min)) return;
    const style = getComputedStyle(this.element);
    const fg = style.getPropertyValue('--vscode-charts-blue').trim() || style.color || '#3794ff';
    const W = c.width, H = c.height, pad = 4 * dpr;
    const y = (val: number) => H - pad - ((val - min) / (max - min || 1)) * (H - 2 * pad);
    if (this.band) {
      const x0 = Math.floor((this.band[0] / v.length) * W), x1 = Math.ceil((this.band[1] / v.length) * W);
      g.fillStyle = style.getPropertyValue('--vscode-editor-selectionBackground').trim() || 'rgba(38, 79, 120, 0.5)';
      g.fillRect(x0, 0, Math.max(2 * dpr, x1 - x0), H);
    }
    g.strokeStyle = fg;
    g.lineWidth = dpr;
    g.beginPath();
    for (let px = 0; px < W; px++) {
      const a = Math.floor((px / W) * v.length), b = Math.max(a + 1, Math.floor(((px + 1) / W) * v.length));
      let lo = Infinity, hi = -Infinity;
      for (let i = a; i < b && i < v.length; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i]; }
      if (!Number.isFinite(lo)) continue;
      if (px === 0) g.moveTo(px, y(lo));
      g.lineTo(px + 0.5, y(lo));
      g.lineTo(px + 0.5, y(hi));
    }
    g.stroke();
    if (this.marker !== null && this.marker < v.length) {
      const x = ((this.marker + 0.5) / v.length) * W;
      g.fillStyle = style.color || '#888';
      g.fillRect(Math.round(x), 0, Math.max(1, dpr), H);
    }
    c.setAttribute('aria-label', `${this.options.label}: ${v.length} ${this.options.xName ?? 'tokens'}, ${this.options.valueName} from ${formatValue(min)} to ${formatValue(max)}`);
  }
}
