/**
 * Placement of the panel's hover boxes (token strip, heatmaps): below the thing hovered, above it
 * when there is no room below, and always inside the panel's visible area, so a box for the last
 * token of a line or a cell at the bottom edge is never cut off.
 */

/** What the box must not cover, in viewport coordinates: it goes below `bottom` or above `top`, from `left`. */
export interface TooltipAnchor {
  readonly left: number;
  readonly top: number;
  readonly bottom: number;
}

/** Distance from the anchor and from the panel's edges, in CSS pixels. */
const GAP = 4;

/** Positions `tip` (absolutely positioned, already shown so it can be measured) next to `anchor`. */
export function placeTooltip(tip: HTMLElement, anchor: TooltipAnchor): void {
  const view = document.documentElement;
  const w = tip.offsetWidth, h = tip.offsetHeight;
  const left = Math.max(GAP, Math.min(anchor.left, view.clientWidth - GAP - w));
  const below = anchor.bottom + GAP;
  const top = below + h <= view.clientHeight - GAP ? below : Math.max(GAP, anchor.top - GAP - h);
  // style.left/top are relative to the padding box of the offset parent.
  const parent = tip.offsetParent ?? document.body;
  const p = parent.getBoundingClientRect();
  tip.style.left = `${left - p.left - parent.clientLeft}px`;
  tip.style.top = `${top - p.top - parent.clientTop}px`;
}
