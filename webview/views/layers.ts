/**
 * Layer selector and per-layer summary: each layer's kind, mean Δ and the share of near-reset steps (forget factor
 * meanₙ exp(Δ·A) < τ) for every layer, filled in as the background summaries arrive. A row is a
 * button: click or Enter selects the layer everywhere (↑/↓ also move it).
 */
import { formatPercent, formatValue } from '../render/format';
import { drawTable } from '../render/textCanvas';
import type { PanelData } from '../panelData';
import type { View, ViewContext, ViewDescription, ViewSpec, ViewUpdate } from './view';

class LayersView implements View {
  readonly element: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private readonly tauHeader: HTMLTableCellElement;
  private unsubscribe: (() => void) | null = null;
  private data: PanelData | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'layers';
    const table = document.createElement('table');
    table.className = 'layer-table';
    const caption = document.createElement('caption');
    caption.textContent = 'Per-layer summary (click a row to select the layer)';
    const head = table.createTHead().insertRow();
    this.tauHeader = document.createElement('th');
    for (const [text, cls] of [['layer', ''], ['kind', ''], ['mean Δ', ''], ['', 'tau']] as const) {
      const th = cls === 'tau' ? this.tauHeader : document.createElement('th');
      if (text) th.textContent = text;
      th.scope = 'col';
      head.append(th);
    }
    this.body = table.createTBody();
    table.prepend(caption);
    this.element.append(table);
    this.body.addEventListener('click', (e) => this.pick(e.target));
    this.body.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        this.pick(e.target);
        e.preventDefault();
      }
    });
  }

  update({ data, state }: ViewUpdate): void {
    if (this.data !== data) {
      this.unsubscribe?.();
      this.data = data;
      this.unsubscribe = data.onSummaries(() => this.render());
      void data.computeSummaries(state.threshold, state.layer).catch(() => undefined);
    } else if (data.summary(state.layer)?.threshold !== state.threshold) {
      void data.computeSummaries(state.threshold, state.layer).catch(() => undefined);
    }
    this.render();
  }

  private render(): void {
    const data = this.data;
    if (!data) return;
    const { layer: selected, threshold } = this.ctx.store.get();
    this.tauHeader.textContent = `near-reset steps (meanₙ exp(Δ·A) < ${threshold})`;
    const rows = data.layerNumbers.map((layer) => {
      const s = data.summary(layer);
      const tr = document.createElement('tr');
      tr.tabIndex = 0;
      tr.dataset.layer = String(layer);
      tr.setAttribute('role', 'button');
      tr.setAttribute('aria-pressed', String(layer === selected));
      if (layer === selected) tr.classList.add('selected');
      const fraction = s?.threshold === threshold ? s.resetFraction : undefined;
      const noDelta = s !== undefined && s.perToken.delta === null;
      // A hybrid's attention and MLP layers have no scan at all: say so rather than that Δ is missing.
      const noScan = !!data.model?.layerLabels && data.model.scans.length > 0 && data.model.scans[layer] === undefined;
      const cells = [
        String(layer),
        data.model?.layerLabels?.[layer] ?? '',
        !s ? '…' : noScan ? 'no selective scan' : noDelta ? 'no Δ in the data' : formatValue(s.meanDelta),
        fraction === undefined ? '…' : fraction !== null ? formatPercent(fraction) : noDelta ? '—' : 'needs the model (open it)',
      ];
      for (const c of cells) tr.insertCell().textContent = c;
      if (typeof fraction === 'number') {
        const bar = document.createElement('span');
        bar.className = 'fraction-bar';
        bar.style.width = `${Math.round(fraction * 100)}%`;
        tr.cells[3].prepend(bar);
      }
      return tr;
    });
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.layer;
    this.body.replaceChildren(...rows);
    if (focused !== undefined) (this.body.querySelector(`tr[data-layer="${focused}"]`) as HTMLElement | null)?.focus();
  }

  private pick(target: EventTarget | null): void {
    const row = target instanceof HTMLElement ? target.closest('tr') : null;
    if (row?.dataset.layer !== undefined) this.ctx.store.set({ layer: Number(row.dataset.layer) });
  }

  snapshot(): HTMLCanvasElement {
    const table = this.element.querySelector('table')!;
    const rows = [...table.rows].map((tr) => [...tr.cells].map((c) => ({
      text: c.textContent ?? '',
      outlined: tr.classList.contains('selected'),
      bar: c.querySelector('.fraction-bar') ? parseFloat((c.querySelector('.fraction-bar') as HTMLElement).style.width) / 100 : undefined,
    })));
    return drawTable(rows, getComputedStyle(this.element));
  }

  describe(): ViewDescription {
    const data = this.data;
    const values = data ? data.layerNumbers.map((l) => data.summary(l)?.meanDelta).filter((v): v is number => v !== undefined) : [];
    return { drawn: values.length > 0, distinctColors: 0, min: values.length ? Math.min(...values) : NaN, max: values.length ? Math.max(...values) : NaN };
  }

  dispose(): void {
    this.unsubscribe?.();
  }
}

export const layersView: ViewSpec = {
  id: 'layers',
  title: 'Layers',
  area: 'lower',
  empty: 'No inspection yet: the per-layer summary (mean Δ, near-reset steps) appears after “Inspect Selection”.',
  create: (ctx) => new LayersView(ctx),
};
