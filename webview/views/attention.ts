/**
 * Implicit attention of the selected layer (a hybrid's attention layer: its own attention, per
 * head or averaged): an [L, L] heatmap, query token t down, attended token s across (causal:
 * zero right of the diagonal). The mode picks the channel mean, the
 * selected channel's α_d, or the rollout across layers. The selected token's row is highlighted
 * and a click on a cell selects the attended token s in every view. A long computation shows its
 * progress with a Cancel button; a cancelled one leaves the other views as they are and offers
 * to compute again.
 */
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import type { VscodeSingleSelect } from '@vscode-elements/elements/dist/vscode-single-select/vscode-single-select.js';
import { AttentionCache, type AttentionMode } from '../analysis/attention';
import { Unavailable } from '../analysis/layerAnalysis';
import type { PanelData } from '../panelData';
import { Heatmap } from '../render/heatmap';
import { CancelledError } from '../../src/engine/errors';
import { button, colourHeatmap, scaleControl, tokenLabel } from './common';
import type { ExportSlice, View, ViewContext, ViewSpec, ViewUpdate } from './view';

const ID = 'attention';

const MODES: readonly (readonly [AttentionMode, string])[] = [
  ['mean', 'channel mean'],
  ['channel', 'selected channel'],
  ['rollout', 'rollout across layers'],
];

class AttentionView implements View {
  readonly element: HTMLElement;
  private readonly heatmap: Heatmap;
  private readonly title: HTMLElement;
  private readonly modeSelect: VscodeSingleSelect;
  /** Why the chosen mode cannot draw; shown inside the view so the mode picker stays reachable. */
  private readonly message: HTMLElement;
  /** "Computing … [Cancel]" while a map is being computed. */
  private readonly progress: HTMLElement;
  private readonly progressText: HTMLElement;
  /** The computation in flight; Cancel sets `cancelled`. */
  private job: { cancelled: boolean } | null = null;
  private cache: { data: PanelData; maps: AttentionCache } | null = null;
  private shown: { key: string; values: Float64Array; L: number; name: string } | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'attention';
    const bar = document.createElement('div');
    bar.className = 'view-controls';
    this.title = document.createElement('h3');
    this.title.className = 'view-title';
    this.modeSelect = document.createElement('vscode-single-select') as VscodeSingleSelect;
    this.modeSelect.className = 'attention-mode';
    this.modeSelect.setAttribute('aria-label', 'Attention shown');
    for (const [value, label] of MODES) {
      const o = document.createElement('vscode-option');
      o.setAttribute('value', value);
      o.textContent = label;
      this.modeSelect.append(o);
    }
    this.modeSelect.value = ctx.store.get().attentionMode;
    // The mode lives in the store so the frame redraws (and shows why not) like any selection change.
    this.modeSelect.addEventListener('change', () => ctx.store.set({ attentionMode: this.modeSelect.value as AttentionMode }));
    bar.append(this.title, this.modeSelect, scaleControl(ctx.store, ID));
    this.message = document.createElement('div');
    this.message.className = 'view-message attention-message';
    this.message.setAttribute('role', 'status');
    this.message.hidden = true;
    this.progress = document.createElement('div');
    this.progress.className = 'view-message attention-progress';
    this.progress.setAttribute('role', 'status');
    this.progress.hidden = true;
    this.progressText = document.createElement('span');
    this.progress.append(this.progressText, button('Cancel', 'Cancel the attention computation', () => {
      if (this.job) this.job.cancelled = true;
    }));
    this.heatmap = new Heatmap({
      label: 'implicit attention',
      xName: 'attended token',
      yName: 'token',
      valueName: 'α',
      xLabel: (s) => tokenLabel(ctx.data(), s),
      yLabel: (t) => tokenLabel(ctx.data(), t),
      onSelect: (s) => ctx.store.set({ token: s }),
    });
    this.element.append(bar, this.progress, this.message, this.heatmap.element);
  }

  async update({ data, state, stale }: ViewUpdate): Promise<void> {
    if (this.cache?.data !== data) this.cache = { data, maps: new AttentionCache(data) };
    const mode = state.attentionMode;
    this.modeSelect.value = mode;
    const channel = mode === 'channel' ? state.channel : null;
    const key = `${data.inspection.id}:${state.layer}:${mode}:${channel}`;
    if (this.shown?.key !== key) {
      this.shown = null;
      const job = { cancelled: false };
      this.job = job;
      let shown;
      try {
        shown = await this.cache.maps.map(state.layer, mode, channel, () => stale() || job.cancelled, (what, done, total) => {
          this.progressText.textContent = `Computing the implicit attention of ${what}: ${done} of ${total} channels… `;
          this.progress.hidden = false;
        });
      } catch (e) {
        if (stale()) return; // a newer selection is being drawn; a cancelled computation is not an error
        if (job.cancelled && e instanceof CancelledError) {
          this.showMessage(`Cancelled: the implicit attention of layer ${state.layer} was not computed. `, button('Compute', 'Compute the implicit attention again', () => {
            void this.update({ data, state, changed: null, stale }).catch((err) => this.showMessage(`Attention failed: ${err instanceof Error ? err.message : String(err)}`));
          }));
          return;
        }
        if (!(e instanceof Unavailable)) throw e;
        this.showMessage(e.message);
        return;
      } finally {
        if (this.job === job) {
          this.job = null;
          this.progress.hidden = true;
        }
      }
      if (stale()) return;
      const { tensor, what } = shown;
      this.message.hidden = true;
      this.heatmap.element.hidden = false;
      const L = tensor.shape[0];
      colourHeatmap(this.heatmap, state, ID);
      this.heatmap.setData({ data: tensor.data, width: L, height: L, xStride: 1, yStride: L });
      const kind = data.record(state.layer)?.tensors.attn_pattern && mode !== 'rollout' ? 'Attention' : 'Implicit attention';
      this.heatmap.setLabels(`${kind.toLowerCase()} heatmap, layer ${state.layer}, ${what}`, 'α', 'token');
      this.title.textContent = `${kind} · layer ${state.layer} · ${what} · token (row) × attended token`;
      this.shown = { key, values: tensor.data, L, name: `layer${state.layer}-attention-${mode}${channel === null ? '' : `-channel${channel}`}` };
    }
    colourHeatmap(this.heatmap, state, ID);
    this.heatmap.setCrosshair(null, state.token !== null && state.token < this.shown.L ? state.token : null);
  }

  /** A message in place of the heatmap (the mode picker stays reachable). */
  private showMessage(text: string, ...controls: HTMLElement[]): void {
    this.heatmap.setData(null);
    this.heatmap.element.hidden = true;
    this.message.replaceChildren(text, ...controls);
    this.message.hidden = false;
  }

  describe() {
    return this.heatmap.describe();
  }

  snapshot(): HTMLCanvasElement {
    return this.heatmap.snapshot();
  }

  /** The visible window: rows = query tokens, columns = attended tokens. */
  slice(): ExportSlice | null {
    const data = this.ctx.data();
    const w = this.heatmap.visibleCells();
    if (!this.shown || !data || !w) return null;
    const { values, L } = this.shown;
    const cols = w.x1 - w.x0;
    const out = new Float32Array(w.rows.length * cols);
    w.rows.forEach((t, r) => {
      for (let s = 0; s < cols; s++) out[r * cols + s] = values[t * L + w.x0 + s];
    });
    return {
      name: this.shown.name,
      tensor: { shape: [w.rows.length, cols], data: out },
      rowLabels: Array.from(w.rows, (t) => tokenLabel(data, t)),
      columnLabels: Array.from({ length: cols }, (_, s) => tokenLabel(data, w.x0 + s)),
    };
  }

  dispose(): void {
    this.heatmap.dispose();
  }
}

export const attentionView: ViewSpec = {
  id: ID,
  title: 'Attention',
  area: 'main',
  empty: 'No inspection yet: run “Mamba Scope: Inspect Selection” to see the implicit attention of each layer.',
  when: (data) => data.inspection.layers.some((l) => !!l.tensors.delta || !!l.tensors.attn_pattern),
  create: (ctx) => new AttentionView(ctx),
};
