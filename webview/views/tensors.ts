/**
 * The tensor browser: any 2-D tensor of the data (a dump's keys, or a run's layers.i.* and
 * logits) as a heatmap. Tensors whose first axis is the token axis are drawn with tokens along x
 * and linked to the token selection; others are drawn as rows × columns. A per-layer tensor
 * follows the selected layer (layers.2.y → layers.3.y).
 */
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import type { VscodeSingleSelect } from '@vscode-elements/elements/dist/vscode-single-select/vscode-single-select.js';
import { parseDumpKey } from '../../src/engine/formats/dump';
import { shapeString, toFloat32, type Tensor } from '../../src/engine/tensor';
import { Unavailable } from '../analysis/layerAnalysis';
import { hooksOf } from '../export';
import { Heatmap } from '../render/heatmap';
import type { PanelData } from '../panelData';
import { colourHeatmap, scaleControl, syncHeatmap, tokenLabel, visibleSlice } from './common';
import type { ExportSlice, View, ViewContext, ViewDescription, ViewSpec, ViewUpdate } from './view';

const ID = 'tensors';

class TensorsView implements View {
  readonly element: HTMLElement;
  private readonly picker: VscodeSingleSelect;
  private readonly note: HTMLElement;
  private readonly heatmap: Heatmap;
  private listedFor: string | null = null;
  private name: string | null = null;
  private shown: { key: string; t: Tensor<Float32Array>; tokensAlongX: boolean } | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'tensors';
    const label = document.createElement('label');
    label.className = 'control';
    label.textContent = 'Tensor ';
    this.picker = document.createElement('vscode-single-select') as VscodeSingleSelect;
    this.picker.setAttribute('aria-label', 'Tensor to show');
    this.picker.addEventListener('change', () => {
      this.name = this.picker.value;
      const data = ctx.data();
      if (data) this.refresh(data).catch((e) => (this.note.textContent = `Could not read ${this.name}: ${e instanceof Error ? e.message : String(e)}`));
    });
    label.append(this.picker);
    this.note = document.createElement('p');
    this.note.className = 'view-note';
    this.heatmap = new Heatmap({
      label: 'tensor',
      xName: 'token',
      yName: 'column',
      valueName: 'value',
      xLabel: (x) => (this.shown?.tokensAlongX ? tokenLabel(ctx.data(), x) : String(x)),
      onSelect: (x) => {
        if (this.shown?.tokensAlongX) ctx.store.set({ token: x });
      },
    });
    const bar = document.createElement('div');
    bar.className = 'view-controls';
    bar.append(label, scaleControl(ctx.store, ID));
    this.element.append(bar, this.note, this.heatmap.element);
  }

  async update({ data, state, stale }: ViewUpdate): Promise<void> {
    const names = [...data.inspection.index].filter(([, shape]) => shape.length === 2).map(([n]) => n);
    if (!names.length) throw new Unavailable('This data has no 2-D tensors to show.');
    if (this.listedFor !== data.inspection.id) {
      this.picker.replaceChildren(...names.map((n) => {
        const o = document.createElement('vscode-option');
        o.value = n;
        o.textContent = `${n} ${shapeString(data.inspection.index.get(n)!)}`;
        return o;
      }));
      this.listedFor = data.inspection.id;
      this.name = names.includes(`layers.${state.layer}.delta`) ? `layers.${state.layer}.delta` : names[0];
    }
    // A per-layer tensor follows the selected layer.
    const k = this.name ? parseDumpKey(this.name) : null;
    if (k && k.layer !== null && k.layer !== state.layer && names.includes(`layers.${state.layer}.${k.name}`)) this.name = `layers.${state.layer}.${k.name}`;
    if (!this.name || !names.includes(this.name)) this.name = names[0];
    this.picker.value = this.name;
    await this.refresh(data, stale);
  }

  private async refresh(data: PanelData, stale: () => boolean = () => false): Promise<void> {
    const name = this.name!;
    const key = `${data.inspection.id}:${name}`;
    if (this.shown?.key !== key) {
      const t = toFloat32(await data.inspection.tensor(name));
      if (stale() || name !== this.name) return;
      const [rows, cols] = t.shape;
      const alongX = data.inspection.length > 0 && rows === data.inspection.length;
      this.heatmap.setData(alongX ? { data: t.data, width: rows, height: cols, xStride: cols, yStride: 1 } : { data: t.data, width: cols, height: rows, xStride: 1, yStride: cols });
      this.heatmap.setLabels(`${name} heatmap`, parseDumpKey(name).name, alongX ? 'column' : 'row');
      this.note.textContent = alongX ? `${name} ${shapeString(t.shape)}: tokens along x, its ${cols} columns down` : `${name} ${shapeString(t.shape)}: columns along x, rows down`;
      this.shown = { key, t, tokensAlongX: alongX };
    }
    const state = this.ctx.store.get();
    if (this.shown.tokensAlongX) syncHeatmap(this.heatmap, state, ID, this.shown.t.shape[1], null);
    else {
      colourHeatmap(this.heatmap, state, ID);
      this.heatmap.setCrosshair(null, null);
    }
  }

  describe(): ViewDescription {
    return this.heatmap.describe();
  }

  snapshot(): HTMLCanvasElement {
    return this.heatmap.snapshot();
  }

  slice(): ExportSlice | null {
    const s = this.shown, data = this.ctx.data();
    if (!s || !data) return null;
    const [rows, cols] = s.t.shape;
    const name = this.name!.replace(/\./g, '-');
    // A state's rows are hook_h.{t} by its h_tokens, which the slice does not read: h gets no alias here.
    const hooks = hooksOf(data, this.name!);
    if (s.tokensAlongX) {
      const slice = visibleSlice(this.heatmap, { data: s.t.data, rows, cols }, name, data, 'column');
      return slice && { ...slice, hooks };
    }
    return { name, tensor: s.t, rowLabels: Array.from({ length: rows }, (_, r) => `row ${r}`), columnLabels: Array.from({ length: cols }, (_, c) => `column ${c}`), hooks };
  }

  dispose(): void {
    this.heatmap.dispose();
  }
}

export const tensorsView: ViewSpec = {
  id: ID,
  title: 'Tensors',
  area: 'main',
  empty: 'No data yet: open a tensor dump (.safetensors, .npy, .npz) with “Mamba Scope: Open Tensor Dump…”, or run an inspection.',
  create: (ctx) => new TensorsView(ctx),
};
