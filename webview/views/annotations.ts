/**
 * Annotations of the inspected sample: mark the selected token (or a token span) as forgotten,
 * retained or a custom label with a note; list what is annotated (stale ones flagged: the text
 * changed and they were not found again); and review the detector's suggestions for the selected
 * layer — "token s is forgotten at token t" from Retention at the store's τ (the resetThreshold
 * setting) — accepting or rejecting them one by one or all at once. Every change goes to the host
 * (AnnotationEdit), which saves it in .mamba-scope/annotations/ and answers with setAnnotations.
 *
 * On a long run the view works on the window in view, in the sample's positions: the detector
 * covers the window's tokens (retention from s to t needs only the Δ between them, which the
 * window holds at full resolution), so "retained" there means retained to the window's end.
 *
 * A suggestion can be checked by ablation (issue 16): the token's write is ablated in the layer on
 * the panel's engine, and it is causally forgotten when the mean KL of the outputs from where it
 * was forgotten on stays below ε (mambaScope.causalEpsilon). The result stands beside the
 * retention, and an accepted suggestion saves both with the annotation.
 */
import { Retention } from '../../src/engine/analysis/retention';
import type { Annotation, AnnotationSuggestion, CausalEvidence } from '../../src/protocol';
import { formatValue } from '../render/format';
import { causalKey, type CausalCheck } from '../interventions/session';
import { Unavailable } from '../analysis/layerAnalysis';
import { decayFor } from '../inspection';
import type { PanelData } from '../panelData';
import type { ViewState } from '../state';
import { FULL_RESOLUTION_TOKENS } from '../../src/protocol';
import { actionButton, el, field, tokenLabel } from './common';
import type { View, ViewContext, ViewSpec, ViewUpdate } from './view';

const LABELS = ['forgotten', 'retained'] as const;

class AnnotationsView implements View {
  readonly element: HTMLElement;
  private readonly from: HTMLInputElement;
  private readonly to: HTMLInputElement;
  private readonly label: HTMLSelectElement;
  private readonly custom: HTMLInputElement;
  private readonly note: HTMLTextAreaElement;
  private readonly submit: HTMLButtonElement;
  /** The annotation whose label and note the form is changing; null = the form adds a new one. */
  private editing: Annotation | null = null;
  private readonly list: HTMLElement;
  private readonly suggestionHead: HTMLElement;
  private readonly suggestionList: HTMLElement;
  private readonly bulk: HTMLElement;
  /** The (run, layer, τ) whose detector result the host has. */
  private detectedFor: string | null = null;
  private selectedFor: number | null = null;
  private shown: { data: PanelData; state: ViewState } | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = el('div', 'annotations');
    const form = el('form', 'annotation-form');
    form.setAttribute('aria-label', 'New annotation');
    this.from = numberInput('First token');
    this.to = numberInput('Last token');
    this.label = document.createElement('select');
    this.label.className = 'annotation-label';
    this.label.setAttribute('aria-label', 'Label');
    for (const l of [...LABELS, 'custom']) this.label.append(new Option(l === 'custom' ? 'custom label…' : l, l));
    this.custom = document.createElement('input');
    this.custom.className = 'annotation-custom';
    this.custom.placeholder = 'custom label';
    this.custom.setAttribute('aria-label', 'Custom label');
    this.custom.hidden = true;
    this.label.addEventListener('change', () => (this.custom.hidden = this.label.value !== 'custom'));
    this.note = document.createElement('textarea');
    this.note.className = 'annotation-note';
    this.note.rows = 2;
    this.note.placeholder = 'note (optional)';
    this.note.setAttribute('aria-label', 'Note');
    this.submit = document.createElement('button');
    this.submit.type = 'submit';
    this.submit.className = 'annotation-add';
    this.submit.textContent = 'Annotate';
    form.append(field('Tokens', 'annotation-field', this.from, text(' – '), this.to), field('Label', 'annotation-field', this.label, this.custom), this.note, this.submit);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (this.editing) this.saveEdit(this.editing);
      else this.add();
    });

    this.list = el('ul', 'annotation-list');
    this.list.setAttribute('aria-label', 'Annotations');
    this.suggestionHead = el('h4', 'suggestion-head');
    this.bulk = el('div', 'suggestion-bulk');
    this.bulk.append(
      actionButton('Accept all', 'accept-all', () => this.decide('accept', this.ctx.suggestions())),
      actionButton('Reject all', 'reject-all', () => this.decide('reject', this.ctx.suggestions())),
      actionButton('Check all by ablation', 'check-all', () => void this.check(this.ctx.suggestions())),
    );
    this.suggestionList = el('ul', 'suggestion-list');
    this.suggestionList.setAttribute('aria-label', 'Detector suggestions');
    const listHead = el('h4', 'annotation-head');
    listHead.textContent = 'Annotated';
    this.element.append(form, listHead, this.list, this.suggestionHead, this.bulk, this.suggestionList);
  }

  update({ data, state }: ViewUpdate): void {
    if (data.inspection.kind !== 'run') throw new Unavailable('Annotations belong to a text sample: run “Mamba Scope: Inspect File” on it (a tensor dump has no sample text to anchor them to).');
    this.shown = { data, state };
    if (state.token !== this.selectedFor) {
      // The form follows the selection: one token unless the user widened the span.
      this.selectedFor = state.token;
      const t = state.token === null ? '' : String(state.token + data.inspection.offset);
      this.from.value = t;
      this.to.value = t;
    }
    this.from.min = this.to.min = String(data.inspection.offset);
    this.from.max = this.to.max = String(data.inspection.offset + Math.max(0, data.inspection.length - 1));
    this.detect(data, state);
    this.renderList(data);
    this.renderSuggestions(data, state);
  }

  /** Runs the detector for the selected layer once per (run, layer, τ) and hands the result to the host. */
  private detect(data: PanelData, state: ViewState): void {
    const off = data.inspection.offset;
    const key = `${data.inspection.id}:${off}+${data.inspection.length}:${state.layer}:${state.threshold}`;
    if (this.detectedFor === key) return;
    const rec = data.record(state.layer);
    const delta = rec?.tensors.delta;
    const decay = rec ? decayFor(data.model, rec).decay : null;
    if (!delta || !decay) return;
    this.detectedFor = key;
    const forgottenAt = Retention.fromLayer(delta, decay.A, `layer ${state.layer}`).forgottenAt(state.threshold);
    this.ctx.annotate({ op: 'detect', runId: data.runId, layer: state.layer, threshold: state.threshold, forgottenAt: Array.from(forgottenAt, (t) => (t < 0 ? t : t + off)), from: off });
  }

  private renderList(data: PanelData): void {
    const items = this.ctx.annotations().map((a) => {
      const li = el('li', `annotation${a.stale ? ' stale' : ''}`);
      li.dataset.id = a.id;
      const what = el('span', 'annotation-what');
      what.textContent = `${a.label} · ${span(data, a)}${a.layer === null ? '' : ` · layer ${a.layer}`}${a.stale ? ' · stale: text not found since it changed' : ''}`;
      const note = el('span', 'annotation-note-text');
      note.textContent = a.note;
      const evidence = el('span', 'causal-check annotation-evidence');
      evidence.textContent = evidenceText(a.forgottenAt, a.causal);
      if (a.causal) evidence.dataset.causal = String(a.causal.meanKl < a.causal.epsilon);
      li.append(what, note, evidence, actionButton('Edit', 'edit', () => this.startEdit(a)), actionButton('Delete', 'delete', () => this.ctx.annotate({ op: 'remove', runId: a.runId, ids: [a.id] })));
      const local = a.tokens[0] - data.inspection.offset;
      if (!a.stale && a.tokens[1] > a.tokens[0] && local >= 0 && local < data.inspection.length) li.addEventListener('click', (e) => (e.target as HTMLElement).tagName !== 'BUTTON' && this.ctx.store.set({ token: local }));
      return li;
    });
    this.list.replaceChildren(...(items.length ? items : [emptyItem('Nothing annotated yet.')]));
  }

  private renderSuggestions(data: PanelData, state: ViewState): void {
    const open = this.ctx.suggestions();
    const rec = data.record(state.layer);
    const w = data.long ? ` in tokens ${data.inspection.offset}–${data.inspection.offset + data.inspection.length - 1} of ${data.long.run.tokens}` : '';
    // A check by ablation reruns the whole sample, which a long run does not (views/common.ts refuseLongRun).
    const checks = !data.long;
    this.suggestionHead.textContent = data.long && !data.long.fullResolution
      ? `Detector: waiting for the internals of the window${w}`
      : !rec || !decayFor(data.model, rec).decay
        ? `Detector: needs the model’s A for layer ${state.layer}`
        : `Detector suggestions (τ = ${state.threshold})${w}: ${open.length} open${checks ? '' : `; checking by ablation needs a sample of at most ${FULL_RESOLUTION_TOKENS} tokens`}`;
    this.bulk.hidden = open.length === 0;
    (this.bulk.querySelector('[data-action="check-all"]') as HTMLElement).hidden = !checks;
    const items = open.map((s) => {
      const li = el('li', 'suggestion');
      li.dataset.layer = String(s.layer);
      li.dataset.token = String(s.token);
      const what = el('span', 'suggestion-what');
      what.textContent = `${tokenLabel(data, s.token - data.inspection.offset)} forgotten at token ${s.forgottenAt} in layer ${s.layer}`;
      const check = this.ctx.interventions.causal.get(causalKey(s.layer, s.token));
      const causal = el('span', 'causal-check');
      causal.textContent = check ? causalText(check) : 'not checked by ablation';
      if (check) Object.assign(causal.dataset, { causal: String(check.meanKl < check.epsilon), kl: String(check.meanKl) });
      li.append(what, ...(checks ? [causal, actionButton('Check', 'check', () => void this.check([s]))] : []), actionButton('Accept', 'accept', () => this.decide('accept', [s])), actionButton('Reject', 'reject', () => this.decide('reject', [s])));
      return li;
    });
    this.suggestionList.replaceChildren(...items);
  }

  /** Accepted suggestions carry their causal check, when one was run, so the annotation saves it. */
  private decide(op: 'accept' | 'reject', suggestions: readonly AnnotationSuggestion[]): void {
    const runId = this.shown?.data.runId;
    if (!runId || suggestions.length === 0) return;
    const checks = this.ctx.interventions.causal;
    this.ctx.annotate({
      op,
      runId,
      suggestions: suggestions.map(({ layer, token }) => {
        const c = op === 'accept' ? checks.get(causalKey(layer, token)) : undefined;
        return c ? { layer, token, causal: { meanKl: c.meanKl, epsilon: c.epsilon } } : { layer, token };
      }),
    });
  }

  /** Ablates each suggested token's write in its layer, one forward each, as one cancellable job. */
  private async check(suggestions: readonly AnnotationSuggestion[]): Promise<void> {
    const session = this.ctx.interventions;
    const epsilon = this.ctx.causalEpsilon();
    const runId = this.shown?.data.runId;
    if (!runId || suggestions.length === 0) return;
    await session.start('causal check', async (ctx) => {
      for (const [i, s] of suggestions.entries()) {
        ctx.progress({ stage: `token ${s.token} in layer ${s.layer}`, done: i, total: suggestions.length });
        const meanKl = await session.compute.ablatedMeanKl(s.layer, s.token, s.forgottenAt, ctx);
        if (this.shown?.data.runId !== runId) return;
        session.causal.set(causalKey(s.layer, s.token), { layer: s.layer, token: s.token, forgottenAt: s.forgottenAt, meanKl, epsilon });
        session.changed();
      }
    }).catch(() => undefined); // the session's status line says why
  }

  /** Loads an annotation's label and note into the form; submitting then changes it instead of adding one. */
  private startEdit(a: Annotation): void {
    this.editing = a;
    const builtin = (LABELS as readonly string[]).includes(a.label);
    this.label.value = builtin ? a.label : 'custom';
    this.custom.hidden = builtin;
    this.custom.value = builtin ? '' : a.label;
    this.note.value = a.note;
    this.from.disabled = this.to.disabled = true;
    this.submit.textContent = 'Save changes';
    this.note.focus();
  }

  private saveEdit(a: Annotation): void {
    const label = this.chosenLabel();
    if (label === null) return;
    this.ctx.annotate({ op: 'update', runId: a.runId, id: a.id, label, note: this.note.value });
    this.editing = null;
    this.from.disabled = this.to.disabled = false;
    this.submit.textContent = 'Annotate';
    this.note.value = '';
  }

  /** The label picked in the form, or null (and the field says why) when the custom one is empty. */
  private chosenLabel(): string | null {
    const label = this.label.value === 'custom' ? this.custom.value.trim() : this.label.value;
    this.custom.setCustomValidity(label ? '' : 'Type the custom label');
    if (!label) {
      this.custom.reportValidity();
      return null;
    }
    return label;
  }

  private add(): void {
    if (!this.shown) return;
    const { data, state } = this.shown;
    const first = data.inspection.offset, last = first + data.inspection.length - 1;
    const a = Number(this.from.value), b = Number(this.to.value);
    if (this.from.value === '' || !Number.isInteger(a) || !Number.isInteger(b) || a < first || b > last || b < a) {
      this.from.setCustomValidity(`Pick tokens between ${first} and ${last} (select one in the strip), first ≤ last`);
      this.from.reportValidity();
      return;
    }
    this.from.setCustomValidity('');
    const label = this.chosenLabel();
    if (label === null) return;
    this.ctx.annotate({ op: 'add', runId: data.runId, tokens: [a, b + 1], layer: state.layer, threshold: state.threshold, label, note: this.note.value });
    this.note.value = '';
  }
}

function causalText(c: CausalCheck): string {
  const forgotten = c.meanKl < c.epsilon;
  return `ablated: mean KL ${formatValue(c.meanKl)} from token ${c.forgottenAt} on, ${forgotten ? '<' : '≥'} ε ${formatValue(c.epsilon)}: ${forgotten ? 'causally forgotten' : 'still used'}`;
}

/** What an annotation's saved evidence says, or nothing for one made by hand. */
function evidenceText(forgottenAt: number | null, causal: CausalEvidence | null): string {
  const parts = [...(forgottenAt === null ? [] : [`retention < τ at token ${forgottenAt}`]), ...(causal ? [`ablated: mean KL ${formatValue(causal.meanKl)} ${causal.meanKl < causal.epsilon ? '<' : '≥'} ε ${formatValue(causal.epsilon)}`] : [])];
  return parts.join(' · ');
}

function span(data: PanelData, a: Annotation): string {
  const [s, e] = a.tokens;
  if (e <= s) return `“${a.text}” (outside the inspected range)`;
  return e - s === 1 ? `token ${tokenLabel(data, s - data.inspection.offset)}` : `tokens ${s}–${e - 1} “${a.text}”`;
}

function text(s: string): Text {
  return document.createTextNode(s);
}

function numberInput(label: string): HTMLInputElement {
  const i = document.createElement('input');
  i.type = 'number';
  i.min = '0';
  i.step = '1';
  i.className = 'annotation-token';
  i.setAttribute('aria-label', label);
  return i;
}

function emptyItem(message: string): HTMLElement {
  const li = el('li', 'annotation-empty');
  li.textContent = message;
  return li;
}

export const annotationsView: ViewSpec = {
  id: 'annotations',
  title: 'Annotations',
  area: 'lower',
  empty: 'No inspection yet: run “Mamba Scope: Inspect File” on a sample to annotate its tokens.',
  create: (ctx) => new AnnotationsView(ctx),
};
