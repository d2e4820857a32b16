/**
 * The panel's one selection store. Every view reads the layer, token, channel, metric, colormap,
 * channel order, τ and the shared tokens × channels window from here and subscribes to changes;
 * no view talks to another directly, so selecting a token anywhere updates everything.
 */
import type { Colormap, TokenMetric } from '../src/protocol';
import type { AttentionMode } from './analysis/attention';
import type { Viewport } from './render/heatmap';
import type { ScaleMode } from './render/valueScale';
import type { TokenWindow } from './long/window';

export const CHANNEL_ORDERS = ['index', 'meanDelta', 'variance'] as const;
export type ChannelOrder = (typeof CHANNEL_ORDERS)[number];
export const CHANNEL_ORDER_LABELS: Record<ChannelOrder, string> = { index: 'channel index', meanDelta: 'mean Δ (high first)', variance: 'variance of the values (high first)' };

export interface ViewState {
  readonly layer: number;
  readonly token: number | null;
  readonly channel: number | null;
  readonly metric: TokenMetric;
  readonly colormap: Colormap;
  readonly channelOrder: ChannelOrder;
  /** Near-reset threshold τ on the forget factor mean_n exp(Δ·A). */
  readonly threshold: number;
  /**
   * Window of the tokens × channels heatmaps, shared so they zoom and pan together; null = all.
   * `rows` is the row count of the heatmap it came from: rows apply only to heatmaps as tall.
   */
  readonly viewport: (Viewport & { readonly rows: number }) | null;
  /** What the attention view shows: the channel mean, the selected channel's α, or the rollout. */
  readonly attentionMode: AttentionMode;
  /** Each heatmap view's scale (linear, log, per-row) by view id; a view not listed is linear. */
  readonly scaleModes: Readonly<Record<string, ScaleMode>>;
  /** What the token strip colours by: the metric, or the last intervention's KL or Δloss at each position. */
  readonly stripValues: StripValues;
  /** A long run's window in view (tokens of the whole sample), whose internals the views show at full resolution; null for other data. */
  readonly window: TokenWindow | null;
}

export const STRIP_VALUES = ['metric', 'kl', 'dloss'] as const;
export type StripValues = (typeof STRIP_VALUES)[number];

export type Listener<T> = (state: T, changed: ReadonlySet<keyof T>) => void;

export class Store<T extends object> {
  private readonly listeners = new Set<Listener<T>>();

  constructor(private state: T) {}

  get(): T {
    return this.state;
  }

  /** Applies the fields that differ and tells each listener which ones changed. */
  set(patch: Partial<T>): void {
    const changed = new Set<keyof T>();
    for (const key of Object.keys(patch) as (keyof T)[]) {
      if (!Object.is(patch[key], this.state[key])) changed.add(key);
    }
    if (changed.size === 0) return;
    this.state = { ...this.state, ...patch };
    for (const l of [...this.listeners]) l(this.state, changed);
  }

  /** Returns the unsubscribe function. */
  subscribe(listener: Listener<T>): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export type SelectionStore = Store<ViewState>;

export function initialViewState(): ViewState {
  return { layer: 0, token: null, channel: null, metric: 'delta', colormap: 'viridis', channelOrder: 'index', threshold: 0.05, viewport: null, attentionMode: 'mean', scaleModes: {}, stripValues: 'metric', window: null };
}

export interface KeyboardScope {
  readonly tokenCount: () => number;
  /** Layers that have data, ascending. */
  readonly layers: () => readonly number[];
  /** Channels of the selected layer. */
  readonly channelCount: () => number;
}

/** Elements whose own arrow keys must keep working (text fields, selects, tabs). */
const OWN_KEYS = /^(INPUT|TEXTAREA|SELECT|VSCODE-TEXTFIELD|VSCODE-TEXTAREA|VSCODE-SINGLE-SELECT|VSCODE-MULTI-SELECT|VSCODE-TABS|VSCODE-TAB-HEADER)$/;

/** ←/→ move the token, ↑/↓ the layer, [ and ] the channel, Esc clears the token and channel selection. */
export function bindKeyboard(store: SelectionStore, scope: KeyboardScope, target: EventTarget = window): () => void {
  const onKey = (e: Event) => {
    const k = e as KeyboardEvent;
    if (k.defaultPrevented || k.altKey || k.ctrlKey || k.metaKey || k.shiftKey) return;
    const path = k.composedPath();
    if (path.some((n) => n instanceof HTMLElement && (OWN_KEYS.test(n.tagName) || n.isContentEditable))) return;
    const s = store.get();
    const L = scope.tokenCount();
    const layers = scope.layers();
    let handled = true;
    if (k.key === 'ArrowRight' && L > 0) store.set({ token: s.token === null ? 0 : Math.min(L - 1, s.token + 1) });
    else if (k.key === 'ArrowLeft' && L > 0) store.set({ token: s.token === null ? L - 1 : Math.max(0, s.token - 1) });
    else if ((k.key === 'ArrowUp' || k.key === 'ArrowDown') && layers.length > 0) {
      const i = layers.indexOf(s.layer);
      const next = k.key === 'ArrowUp' ? Math.max(0, i - 1) : Math.min(layers.length - 1, i + 1);
      store.set({ layer: layers[i < 0 ? 0 : next] });
    } else if ((k.key === '[' || k.key === ']') && scope.channelCount() > 0) {
      const C = scope.channelCount();
      store.set({ channel: s.channel === null ? (k.key === ']' ? 0 : C - 1) : Math.max(0, Math.min(C - 1, s.channel + (k.key === ']' ? 1 : -1))) });
    } else if (k.key === 'Escape') store.set({ token: null, channel: null });
    else handled = false;
    if (handled) k.preventDefault();
  };
  target.addEventListener('keydown', onKey);
  return () => target.removeEventListener('keydown', onKey);
}
