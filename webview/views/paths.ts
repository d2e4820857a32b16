/**
 * Where a hybrid layer does its work: the norm of each path's output at every token — its Mamba
 * mixer, its attention, its feed-forward branch (before the family's multipliers) — and, in a
 * mixture-of-experts layer, which experts each token was routed to, with their weights. Tokens
 * run along x as in the other heatmaps; a click selects the token everywhere.
 */
import { rowNorms, type Tensor } from '../../src/engine/tensor';
import { Unavailable } from '../analysis/layerAnalysis';
import type { LayerRecord } from '../inspection';
import { Heatmap } from '../render/heatmap';
import { colourHeatmap, scaleControl, stackCanvases, tokenLabel } from './common';
import type { ExportSlice, View, ViewContext, ViewDescription, ViewSpec, ViewUpdate } from './view';

const ID = 'paths';
const PATHS = [['ssm_out', 'Mamba'], ['attn_out', 'attention'], ['mlp_out', 'feed-forward']] as const;

/** Each present path's output norm per token: [paths, L], and the paths' names. */
function pathNorms(rec: LayerRecord): { data: Float32Array; rows: string[]; L: number } | null {
  const present = PATHS.filter(([k]) => rec.tensors[k]);
  if (!present.length) return null;
  const L = rec.tensors[present[0][0]]!.shape[0];
  const data = new Float32Array(present.length * L);
  present.forEach(([k], p) => data.set(rowNorms(rec.tensors[k]!), p * L));
  return { data, rows: present.map(([, name]) => name), L };
}

/** The routing weights as [experts, L] (zero where a token did not go), from the chosen experts and weights [L, k]. */
function routing(experts: Tensor<Float32Array>, weights: Tensor<Float32Array>): { data: Float32Array; E: number; L: number } {
  const [L, k] = experts.shape;
  const E = Math.max(0, ...experts.data) + 1;
  const data = new Float32Array(E * L);
  for (let t = 0; t < L; t++) for (let j = 0; j < k; j++) data[experts.data[t * k + j] * L + t] = weights.data[t * k + j];
  return { data, E, L };
}

class PathsView implements View {
  readonly element: HTMLElement;
  private readonly title: HTMLElement;
  private readonly norms: Heatmap;
  private readonly experts: Heatmap;
  private readonly expertsTitle: HTMLElement;
  private shown: { key: string; rows: string[]; values: Float32Array; L: number } | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'paths';
    const bar = document.createElement('div');
    bar.className = 'view-controls';
    this.title = document.createElement('h3');
    this.title.className = 'view-title';
    bar.append(this.title, scaleControl(ctx.store, ID));
    const common = { xName: 'token', xLabel: (t: number) => tokenLabel(ctx.data(), t), onSelect: (t: number) => ctx.store.set({ token: t }) };
    this.norms = new Heatmap({ ...common, label: 'path output norms', yName: 'path', valueName: '‖out‖', yLabel: (r: number) => this.shown?.rows[r] ?? String(r) });
    this.expertsTitle = document.createElement('h3');
    this.expertsTitle.className = 'view-title';
    this.experts = new Heatmap({ ...common, label: 'expert routing', yName: 'expert', valueName: 'weight', yLabel: (e: number) => `expert ${e}` });
    this.element.append(bar, this.norms.element, this.expertsTitle, this.experts.element);
  }

  update({ data, state }: ViewUpdate): void {
    const rec = data.record(state.layer);
    const norms = rec && pathNorms(rec);
    if (!rec || !norms) throw new Unavailable(`Layer ${state.layer} records no path outputs: the paths view is for hybrid models (attention, MLP and MoE beside Mamba).`);
    const key = `${data.inspection.id}:${state.layer}`;
    colourHeatmap(this.norms, state, ID);
    colourHeatmap(this.experts, state, ID);
    if (this.shown?.key !== key) {
      const label = data.model?.layerLabels?.[state.layer];
      this.title.textContent = `Paths · layer ${state.layer}${label ? ` (${label})` : ''} · ‖output‖ per token, before the family's multipliers`;
      this.norms.setData({ data: norms.data, width: norms.L, height: norms.rows.length, xStride: 1, yStride: norms.L });
      this.norms.setLabels(`path output norms, layer ${state.layer}`, '‖out‖', 'path');
      const { moe_experts: e, moe_weights: w } = rec.tensors;
      this.experts.element.hidden = this.expertsTitle.hidden = !(e && w);
      if (e && w) {
        const r = routing(e, w);
        this.expertsTitle.textContent = `Experts each token was routed to · weight (top ${e.shape[1]} of ${r.E})`;
        this.experts.setData({ data: r.data, width: r.L, height: r.E, xStride: 1, yStride: r.L });
        this.experts.setLabels(`expert routing, layer ${state.layer}`, 'weight', 'expert');
      } else {
        this.experts.setData(null);
      }
      this.shown = { key, rows: norms.rows, values: norms.data, L: norms.L };
    }
    const token = state.token !== null && state.token < norms.L ? state.token : null;
    this.norms.setCrosshair(token, null);
    this.experts.setCrosshair(token, null);
  }

  describe(): ViewDescription {
    return this.norms.describe();
  }

  snapshot(): HTMLCanvasElement {
    return this.experts.element.hidden ? this.norms.snapshot() : stackCanvases([this.norms.snapshot(), this.experts.snapshot()]);
  }

  slice(): ExportSlice | null {
    const data = this.ctx.data();
    if (!this.shown || !data) return null;
    const { rows, values, L } = this.shown;
    return {
      name: `layer${this.ctx.store.get().layer}-paths`,
      tensor: { shape: [rows.length, L], data: values },
      rowLabels: rows,
      columnLabels: Array.from({ length: L }, (_, t) => tokenLabel(data, t)),
    };
  }

  dispose(): void {
    this.norms.dispose();
    this.experts.dispose();
  }
}

export const pathsView: ViewSpec = {
  id: ID,
  title: 'Paths',
  area: 'main',
  empty: 'No inspection yet: run “Mamba Scope: Inspect Selection” on a hybrid model to see where each layer does its work.',
  when: (data) => data.inspection.layers.some((l) => PATHS.some(([k]) => l.tensors[k])),
  create: (ctx) => new PathsView(ctx),
};
