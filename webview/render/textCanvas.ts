/**
 * Text views (token strip, tables) drawn on a canvas for PNG export. The DOM itself cannot be
 * rasterised inside a webview (an SVG foreignObject taints the canvas), so each text view
 * describes its content as cells and this module draws them.
 */
export interface TextCell {
  readonly text: string;
  readonly background?: string;
  readonly color?: string;
  /** Drawn as a bar behind the text, 0..1 of the cell width. */
  readonly bar?: number;
  /** Boxed (the selected token). */
  readonly outlined?: boolean;
  /** Starts a new line after this cell (token strip: newline tokens). */
  readonly breakAfter?: boolean;
}

const FONT_PX = 12;
const LINE = 18;
const PAD = 4;

function context(width: number, height: number, style: CSSStyleDeclaration): { canvas: HTMLCanvasElement; g: CanvasRenderingContext2D } {
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(1, Math.ceil(width));
  canvas.height = Math.max(1, Math.ceil(height));
  const g = canvas.getContext('2d')!;
  g.fillStyle = style.getPropertyValue('--vscode-editor-background').trim() || '#ffffff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.font = `${FONT_PX}px ${style.fontFamily || 'monospace'}`;
  g.textBaseline = 'middle';
  return { canvas, g };
}

function measureContext(style: CSSStyleDeclaration): CanvasRenderingContext2D {
  const g = document.createElement('canvas').getContext('2d')!;
  g.font = `${FONT_PX}px ${style.fontFamily || 'monospace'}`;
  return g;
}

function drawCell(g: CanvasRenderingContext2D, c: TextCell, x: number, y: number, w: number, fg: string): void {
  if (c.background) {
    g.fillStyle = c.background;
    g.fillRect(x, y + 1, w, LINE - 2);
  }
  if (c.bar !== undefined) {
    g.fillStyle = 'rgba(55, 148, 255, 0.45)';
    g.fillRect(x, y + 2, Math.max(1, c.bar * w), LINE - 4);
  }
  if (c.outlined) {
    g.strokeStyle = fg;
    g.lineWidth = 2;
    g.strokeRect(x + 1, y + 1, w - 2, LINE - 2);
  }
  g.fillStyle = c.color ?? fg;
  g.fillText(c.text, x + 2, y + LINE / 2);
}

/** Cells flowing left to right, wrapped at `width` (the token strip). */
export function drawFlow(cells: readonly TextCell[], width: number, style: CSSStyleDeclaration): HTMLCanvasElement {
  const m = measureContext(style);
  const placed: { c: TextCell; x: number; y: number; w: number }[] = [];
  let x = PAD, y = PAD;
  for (const c of cells) {
    const w = m.measureText(c.text).width + 4;
    if (x + w > width - PAD && x > PAD) {
      x = PAD;
      y += LINE;
    }
    placed.push({ c, x, y, w });
    x += w + 1;
    if (c.breakAfter) {
      x = PAD;
      y += LINE;
    }
  }
  const { canvas, g } = context(width, y + LINE + PAD, style);
  const fg = style.color || '#000';
  for (const p of placed) drawCell(g, p.c, p.x, p.y, p.w, fg);
  return canvas;
}

/** Rows of cells in aligned columns (tables, top-k lists). */
export function drawTable(rows: readonly (readonly TextCell[])[], style: CSSStyleDeclaration): HTMLCanvasElement {
  const m = measureContext(style);
  const cols = Math.max(0, ...rows.map((r) => r.length));
  const widths = Array.from({ length: cols }, (_, i) => Math.max(40, ...rows.map((r) => (r[i] ? m.measureText(r[i].text).width + 12 : 0))));
  const { canvas, g } = context(widths.reduce((a, b) => a + b, 0) + 2 * PAD, rows.length * LINE + 2 * PAD, style);
  const fg = style.color || '#000';
  rows.forEach((r, j) => {
    let x = PAD;
    r.forEach((c, i) => {
      drawCell(g, c, x, PAD + j * LINE, widths[i], fg);
      x += widths[i];
    });
  });
  return canvas;
}
