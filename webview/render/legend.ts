/**
 * The colour scale of a heatmap and its legend. Sequential maps span the data's [min, max];
 * diverging maps are centred on 0 and span ±max|value|, so white always means zero and equal
 * distances from white mean equal magnitudes. The legend always also states the data's min/max.
 */
import type { Colormap } from '../../src/protocol';
import { colormapCss } from './colormaps';
import { formatValue } from './format';

export interface ColorScale {
  readonly lo: number;
  readonly hi: number;
  /** The neutral value: drawing keeps, per pixel, the cell farthest from it. */
  readonly pivot: number;
}

export function colorScale(min: number, max: number, diverging: boolean): ColorScale {
  if (Number.isNaN(min) || Number.isNaN(max)) return { lo: 0, hi: 0, pivot: 0 };
  if (diverging) {
    const m = Math.max(Math.abs(min), Math.abs(max));
    return { lo: -m, hi: m, pivot: 0 };
  }
  return { lo: min, hi: max, pivot: min };
}

/** What a legend says under a scale other than linear: the value's name, the end labels, a note. */
export interface LegendText {
  readonly name: string;
  readonly low: string;
  readonly high: string;
  readonly note: string | null;
}

const BAR_WIDTH = 160;
const BAR_HEIGHT = 10;

export class Legend {
  readonly element: HTMLElement;
  private readonly bar: HTMLCanvasElement;
  private readonly low: HTMLElement;
  private readonly high: HTMLElement;
  private readonly note: HTMLElement;
  private readonly name: HTMLElement;
  /** What is drawn now; null: nothing (the legend is hidden). */
  private shown: LegendText | null = null;

  constructor(private valueName: string) {
    this.element = document.createElement('div');
    this.element.className = 'legend';
    this.element.setAttribute('role', 'img');
    this.bar = document.createElement('canvas');
    this.bar.width = BAR_WIDTH;
    this.bar.height = BAR_HEIGHT;
    this.bar.className = 'legend-bar';
    this.low = span('legend-low');
    this.high = span('legend-high');
    this.note = span('legend-note');
    this.name = span('legend-name', valueName);
    this.element.append(this.name, this.low, this.bar, this.high, this.note);
  }

  setName(valueName: string): void {
    this.valueName = valueName;
    this.name.textContent = valueName;
  }

  /** `text` replaces the value name and the scale's ends when the scale is not linear in the data. */
  update(colormap: Colormap, scale: ColorScale | null, dataMin: number, dataMax: number, nonFinite = 0, text: LegendText | null = null): void {
    this.element.hidden = !scale;
    if (!scale) {
      this.shown = null;
      return;
    }
    const ctx = this.bar.getContext('2d')!;
    for (let x = 0; x < BAR_WIDTH; x++) {
      ctx.fillStyle = colormapCss(colormap, x / (BAR_WIDTH - 1));
      ctx.fillRect(x, 0, 1, BAR_HEIGHT);
    }
    const shown = text ?? { name: this.valueName, low: formatValue(scale.lo), high: formatValue(scale.hi), note: null };
    this.shown = shown;
    this.name.textContent = shown.name;
    this.low.textContent = shown.low;
    this.high.textContent = shown.high;
    const notes: string[] = [];
    if (shown.note) notes.push(shown.note);
    if (scale.lo !== dataMin || scale.hi !== dataMax) notes.push(`data ${formatValue(dataMin)} … ${formatValue(dataMax)}`);
    if (nonFinite > 0) notes.push(`${nonFinite} non-finite shown magenta`);
    this.note.textContent = notes.join(' · ');
    // Exact numbers for tests and screen readers; the visible ticks are rounded.
    Object.assign(this.element.dataset, { lo: String(scale.lo), hi: String(scale.hi), min: String(dataMin), max: String(dataMax) });
    this.element.setAttribute('aria-label', `${shown.name} colour scale ${colormap} from ${shown.low} to ${shown.high}${notes.length ? `; ${notes.join('; ')}` : ''}`);
  }

  /** The legend drawn on a canvas, for PNG export. */
  snapshot(): HTMLCanvasElement {
    const out = document.createElement('canvas');
    out.width = BAR_WIDTH + 240;
    out.height = 20;
    const ctx = out.getContext('2d')!;
    const shown = this.shown;
    if (!shown) return out;
    ctx.font = '11px sans-serif';
    ctx.fillStyle = getComputedStyle(this.element).color || '#000';
    ctx.textBaseline = 'middle';
    const head = `${shown.name} ${shown.low}`;
    ctx.fillText(head, 2, 10);
    const x = 8 + ctx.measureText(head).width;
    ctx.drawImage(this.bar, x, 5);
    ctx.fillText(shown.high, x + BAR_WIDTH + 6, 10);
    return out;
  }
}

function span(className: string, text = ''): HTMLElement {
  const s = document.createElement('span');
  s.className = className;
  s.textContent = text;
  return s;
}
