/**
 * Export of a view: PNG of what it draws, CSV and .npy of the tensor slice it shows. The webview
 * only makes the bytes; the host asks where to save them and writes the file.
 */
import { dumpKey, parseDumpKey } from '../src/engine/formats/dump';
import { hookNames } from '../src/engine/formats/hookNames';
import { encodeNpy } from '../src/engine/formats/npy';
import type { InternalName } from '../src/engine/internals';
import type { ExportData, ExportKind } from '../src/protocol';
import type { PanelData } from './panelData';
import type { ExportSlice, View } from './views/view';

export class ExportError extends Error {}

/**
 * The TransformerLens / MambaLens hook names of the tensor `key` (a dump key: layers.2.delta,
 * logits) as `data` holds it: the aliases a dump's metadata gives the same tensor
 * (formats/hookNames.ts), so an export of it, or of a slice of it, carries the names code written
 * against those caches uses. `tokens`: the sample positions of h's rows (hook_h.{t}). A layer is
 * a hybrid's, whose `out` is no mixer output, when it holds a path's output, as buildDump tells.
 */
export function hooksOf(data: PanelData, key: string, tokens?: readonly number[]): string[] {
  const { layer, name } = parseDumpKey(key);
  if (layer === null) return Object.keys(hookNames([], dumpKey, name === 'logits'));
  const hybrid = (['ssm_out', 'attn_out', 'mlp_out'] as const).some((n) => data.inspection.index.has(dumpKey(layer, n)));
  return Object.keys(hookNames([{ layer, names: [name as InternalName], hTokens: tokens, hybrid }], dumpKey, false));
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A [rows, cols] slice as CSV: a header of column labels (its corner cell: the slice's hook names), then one labelled line per row. */
export function sliceToCsv(slice: ExportSlice): string {
  const [rows, cols] = slice.tensor.shape;
  const lines = [[(slice.hooks ?? []).join(' '), ...slice.columnLabels].map(csvField).join(',')];
  const d = slice.tensor.data;
  for (let r = 0; r < rows; r++) {
    const values: string[] = [csvField(slice.rowLabels[r] ?? String(r))];
    // 9 significant digits round-trip any float32 exactly.
    for (let c = 0; c < cols; c++) values.push(String(Number(d[r * cols + c].toPrecision(9))));
    lines.push(values.join(','));
  }
  return `${lines.join('\n')}\n`;
}

function canvasToPng(canvas: HTMLCanvasElement): Promise<ArrayBuffer> {
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? blob.arrayBuffer().then(resolve, reject) : reject(new ExportError('the view could not be encoded as PNG'))), 'image/png');
  });
}

/** `stem` names the PNG ("layer2"); slices name their own files ("layer2-delta-tokens0-99"). */
export async function exportView(view: View, viewId: string, kind: ExportKind, stem: string): Promise<ExportData> {
  if (kind === 'png') {
    const canvas = view.snapshot?.();
    if (!canvas || canvas.width === 0 || canvas.height === 0) throw new ExportError(`the ${viewId} view has nothing drawn to export as PNG`);
    return { kind, suggestedName: `${stem}-${viewId}.png`, bytes: await canvasToPng(canvas) };
  }
  const slice = view.slice?.();
  if (!slice) throw new ExportError(`the ${viewId} view has no tensor slice to export: select a token or layer with data first`);
  const hooks = slice.hooks?.length ? { hookNames: slice.hooks } : {};
  if (kind === 'csv') {
    const bytes = new TextEncoder().encode(sliceToCsv(slice));
    return { kind, suggestedName: `${slice.name}.csv`, bytes: bytes.buffer as ArrayBuffer, ...hooks };
  }
  const npy = encodeNpy(slice.tensor);
  const bytes = npy.byteOffset === 0 && npy.byteLength === npy.buffer.byteLength ? npy.buffer : npy.slice().buffer;
  return { kind, suggestedName: `${slice.name}.npy`, bytes: bytes as ArrayBuffer, ...hooks };
}
