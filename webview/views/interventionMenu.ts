/**
 * The token strip's right-click menu: the interventions at the clicked token in the selected
 * layer. Ablate-write and zero-state need nothing more and run at once; the others open the
 * Interventions view with the token filled in, for their factor, target token, vector or dump.
 */
import type { Intervention } from '../../src/engine/interventions';
import { tokenLabel } from './common';
import type { ViewContext } from './view';

export class InterventionMenu {
  readonly element: HTMLElement;

  constructor(private readonly ctx: ViewContext) {
    this.element = document.createElement('div');
    this.element.className = 'intervention-menu';
    this.element.setAttribute('role', 'menu');
    this.element.hidden = true;
    // Escape closes; ↑/↓ move between the items, as in a native menu.
    this.element.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.close();
      if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
      e.preventDefault();
      const items = [...this.element.querySelectorAll('button')];
      const at = items.indexOf(document.activeElement as HTMLButtonElement);
      items[(at + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length]?.focus();
    });
    document.addEventListener('pointerdown', (e) => !this.element.contains(e.target as Node) && this.close());
  }

  open(token: number, x: number, y: number): void {
    const layer = this.ctx.store.get().layer;
    const s = token;
    const L = this.ctx.data()?.inspection.length ?? s + 1;
    const items: [string, string, Intervention, boolean][] = [
      ['ablate-write', `Ablate its write in layer ${layer}`, { kind: 'ablate-write', layer, tokens: [s] }, true],
      ['zero-state', `Zero the state after it in layer ${layer}`, { kind: 'zero-state', layer, token: s }, true],
      ['scale-delta', `Scale its Δ in layer ${layer}…`, { kind: 'scale-delta', layer, tokens: [s], factor: 0 }, false],
      ['knockout', `Knock it out of later outputs in layer ${layer}…`, { kind: 'knockout', layer, from: s, to: Math.min(L - 1, s + 1) }, false],
      ['steer', `Steer the stream into layer ${layer} here…`, { kind: 'steer', layer, tokens: [s], vector: { file: '', key: '' }, scale: 1 }, false],
      ['patch-state', `Patch the state after it from a dump…`, { kind: 'patch-state', layer, token: s, from: '' }, false],
    ];
    const title = document.createElement('div');
    title.className = 'intervention-menu-title';
    title.textContent = `Token ${tokenLabel(this.ctx.data(), s)}`;
    this.element.replaceChildren(title, ...items.map(([kind, label, intervention, run]) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('role', 'menuitem');
      b.dataset.kind = kind;
      b.textContent = label;
      b.addEventListener('click', () => {
        this.close();
        this.ctx.showView('interventions');
        this.ctx.interventions.ask({ intervention, run });
      });
      return b;
    }));
    this.element.hidden = false;
    // Inside the viewport: flipped left or up where the menu would cross its edge.
    const r = this.element.getBoundingClientRect();
    this.element.style.left = `${Math.max(0, Math.min(x, innerWidth - r.width))}px`;
    this.element.style.top = `${Math.max(0, Math.min(y, innerHeight - r.height))}px`;
    (this.element.querySelector('button') as HTMLButtonElement | null)?.focus();
  }

  close(): void {
    this.element.hidden = true;
  }
}
