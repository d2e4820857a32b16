/**
 * The Interventions view: choose an intervention at the selected token and layer (or from the
 * token strip's right-click menu), run it on the panel's engine, and read its effect against the
 * clean run: the first position that changed, the largest KL and where, the means from the first
 * change on, and the target token's probability. The token strip and the next-token view show
 * the same effect position by position. The intervention is built as its one-line spec
 * (docs/INTERVENTIONS.md) and parsed by the engine's parser, so the panel and the CLI accept and
 * refuse the same things.
 */
import { ABLATED_PATHS, INTERVENTION_KINDS, parseIntervention, PATH_ABLATION_MODES, type Intervention } from '../../src/engine/interventions';
import { isLanguageModelConfig } from '../../src/engine/model/config';
import { formatPercent, formatValue } from '../render/format';
import type { PanelData } from '../panelData';
import { Unavailable } from '../analysis/layerAnalysis';
import { meanFrom } from '../interventions/compute';
import { actionButton, el, field, tokenLabel, vocabText, refuseLongRun } from './common';
import type { View, ViewContext, ViewSpec, ViewUpdate } from './view';

type Kind = (typeof INTERVENTION_KINDS)[number];
const KIND_LABELS: Record<Kind, string> = {
  'ablate-write': 'ablate the write (h_s = Ā_s·h_{s−1})',
  'scale-delta': 'scale Δ by a factor',
  'zero-state': 'zero the state after the token',
  knockout: 'knock the token out of later outputs',
  steer: 'steer: add a vector to the stream',
  'patch-state': 'patch the state from another run’s dump',
  'ablate-path': 'ablate a hybrid layer’s path',
};
/** The form's fields each kind uses, besides the layer. */
const FIELDS: Record<Kind, readonly string[]> = {
  'ablate-write': ['tokens'],
  'scale-delta': ['tokens', 'factor', 'channels'],
  'zero-state': ['token'],
  knockout: ['from', 'to'],
  steer: ['tokens', 'file', 'scale'],
  'patch-state': ['token', 'file'],
  'ablate-path': ['path', 'mode'],
};

class InterventionsView implements View {
  readonly element: HTMLElement;
  private readonly kind: HTMLSelectElement;
  private readonly path: HTMLSelectElement;
  private readonly mode: HTMLSelectElement;
  private readonly inputs: Record<'layer' | 'tokens' | 'token' | 'factor' | 'channels' | 'from' | 'to' | 'scale' | 'target', HTMLInputElement>;
  private readonly fields = new Map<string, HTMLElement>();
  private readonly fileLabel: HTMLElement;
  private readonly runButton: HTMLButtonElement;
  private readonly clearButton: HTMLButtonElement;
  private readonly problem: HTMLElement;
  private readonly result: HTMLElement;
  /** The file the host's picker gave for a steer (with the vector's key) or a patch-state. */
  private file: { kind: 'steer' | 'patch-state'; file: string; key?: string } | null = null;
  private followed: { layer: number; token: number | null } | null = null;
  private shownTarget: number | null = null;

  constructor(private readonly ctx: ViewContext) {
    this.element = el('div', 'interventions');
    const form = el('form', 'intervention-form');
    form.setAttribute('aria-label', 'Intervention');
    this.kind = document.createElement('select');
    this.kind.className = 'intervention-kind';
    this.kind.setAttribute('aria-label', 'Intervention');
    for (const k of INTERVENTION_KINDS) this.kind.append(new Option(KIND_LABELS[k], k));
    this.kind.addEventListener('change', () => this.showFields());
    this.path = choice('Path', ABLATED_PATHS);
    this.mode = choice('Replaced by', PATH_ABLATION_MODES);
    const input = (name: string, label: string, type: 'number' | 'text', placeholder = '') => {
      const i = document.createElement('input');
      i.type = type;
      i.name = name;
      i.className = `intervention-${name}`;
      i.placeholder = placeholder;
      i.setAttribute('aria-label', label);
      if (type === 'number') i.step = 'any';
      return i;
    };
    this.inputs = {
      layer: input('layer', 'Layer', 'number'),
      tokens: input('tokens', 'Tokens (positions and start:end ranges)', 'text', '40 or 3,7,10:20'),
      token: input('token', 'Token', 'number'),
      factor: input('factor', 'Factor on Δ', 'number'),
      channels: input('channels', 'Channels of Δ (all when empty)', 'text', 'all'),
      from: input('from', 'Knocked-out token', 'number'),
      to: input('to', 'From output position', 'number'),
      scale: input('scale', 'Scale of the vector', 'number'),
      target: input('target', 'Target token (an id like #42, or its text)', 'text', 'the actual next token'),
    };
    this.inputs.factor.value = '0';
    this.inputs.scale.value = '1';
    this.fileLabel = el('span', 'intervention-file-name');
    const pick = actionButton('Choose file…', 'pick-file', () => void this.pickFile());
    const labelled = (label: string, ...controls: Node[]) => field(label, 'intervention-field', ...controls);
    // The fields only some kinds use, shown and hidden with the kind.
    const optional = (name: string, label: string, ...controls: Node[]) => {
      const f = labelled(label, ...controls);
      this.fields.set(name, f);
      return f;
    };
    this.runButton = actionButton('Run', 'run', () => void this.run());
    this.clearButton = actionButton('Clear effect', 'clear', () => ctx.interventions.clearOutcome());
    this.problem = el('p', 'intervention-problem');
    this.problem.setAttribute('role', 'alert');
    form.append(
      labelled('Intervention', this.kind),
      labelled('Layer', this.inputs.layer),
      optional('tokens', 'Tokens', this.inputs.tokens),
      optional('token', 'Token', this.inputs.token),
      optional('factor', 'Factor', this.inputs.factor),
      optional('channels', 'Channels', this.inputs.channels),
      optional('from', 'Token', this.inputs.from),
      optional('to', 'Outputs from', this.inputs.to),
      optional('file', 'File', pick, this.fileLabel),
      optional('path', 'Path', this.path),
      optional('mode', 'Replaced by', this.mode),
      optional('scale', 'Scale', this.inputs.scale),
      labelled('Target', this.inputs.target),
      this.runButton,
      this.clearButton,
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.run();
    });
    this.result = el('div', 'intervention-result');
    this.result.setAttribute('aria-live', 'polite');
    this.element.append(form, this.problem, this.result);
    this.showFields();
  }

  update({ data, state }: ViewUpdate): void {
    refuseLongRun(data, 'Interventions');
    if (data.inspection.kind !== 'run' || !data.model || !isLanguageModelConfig(data.model.config)) {
      throw new Unavailable('Interventions rerun the model: inspect a text with “Mamba Scope: Inspect File” (a tensor dump has no model to rerun).');
    }
    // A newly selected token or layer fills the form in; so does a request from the strip's menu.
    if (this.followed?.layer !== state.layer || this.followed.token !== state.token) {
      this.followed = { layer: state.layer, token: state.token };
      this.fill({ layer: state.layer, token: state.token });
    }
    const picked = this.ctx.interventions.target;
    if (picked !== null && picked !== this.shownTarget) this.inputs.target.value = `#${picked}`;
    this.shownTarget = picked;
    const request = this.ctx.interventions.request;
    if (request) {
      this.ctx.interventions.request = null;
      this.fillFrom(request.intervention);
      if (request.run) void this.run();
    }
    const busy = this.ctx.interventions.job !== null;
    this.runButton.disabled = busy;
    this.renderResult(data);
  }

  private fill({ layer, token }: { layer: number; token: number | null }): void {
    this.inputs.layer.value = String(layer);
    if (token === null) return;
    this.inputs.tokens.value = this.inputs.token.value = this.inputs.from.value = String(token);
    this.inputs.to.value = String(token + 1 < (this.ctx.data()?.inspection.length ?? 0) ? token + 1 : token);
  }

  private fillFrom(i: Intervention): void {
    this.kind.value = i.kind;
    this.inputs.layer.value = String(i.layer);
    if (i.kind === 'zero-state' || i.kind === 'patch-state') this.inputs.token.value = String(i.token);
    else if (i.kind === 'knockout') [this.inputs.from.value, this.inputs.to.value] = [String(i.from), String(i.to)];
    else if (i.kind === 'ablate-path') [this.path.value, this.mode.value] = [i.path, i.mode];
    else this.inputs.tokens.value = i.tokens.join(',');
    if (i.kind === 'scale-delta') this.inputs.factor.value = String(i.factor);
    if (i.kind === 'steer') this.inputs.scale.value = String(i.scale);
    this.showFields();
  }

  private showFields(): void {
    const kind = this.kind.value as Kind;
    const used = FIELDS[kind];
    for (const [name, f] of this.fields) f.hidden = !used.includes(name);
    const file = this.file?.kind === kind ? this.file : null;
    this.fileLabel.textContent = file ? `${file.file.split(/[\\/]/).pop()}${file.key ? `:${file.key}` : ''}` : kind === 'steer' ? 'no vector chosen' : 'no dump chosen';
  }

  /**
   * The intervention the form describes: its spec in the CLI's syntax, parsed by the engine's
   * parser, with the chosen file put in afterwards (a path may hold spaces, which the syntax
   * splits on).
   */
  private intervention(): Intervention {
    const parsed = parseIntervention(this.spec());
    const file = this.file?.kind === parsed.kind ? this.file : null;
    if (parsed.kind === 'steer' && file) return { ...parsed, vector: { file: file.file, key: file.key ?? '' } };
    if (parsed.kind === 'patch-state' && file) return { ...parsed, from: file.file };
    return parsed;
  }

  /** The spec the form describes, in the CLI's syntax (a chosen file stands in as FILE). */
  private spec(): string {
    const kind = this.kind.value as Kind;
    const v = (name: keyof InterventionsView['inputs']) => this.inputs[name].value.trim();
    const parts = [kind, `layer=${v('layer')}`];
    if (kind === 'ablate-write' || kind === 'scale-delta' || kind === 'steer') parts.push(`tokens=${v('tokens')}`);
    if (kind === 'zero-state' || kind === 'patch-state') parts.push(`token=${v('token')}`);
    if (kind === 'ablate-path') parts.push(`path=${this.path.value}`, `mode=${this.mode.value}`);
    if (kind === 'knockout') parts.push(`from=${v('from')}`, `to=${v('to')}`);
    if (kind === 'scale-delta') parts.push(`factor=${v('factor')}`, ...(v('channels') && v('channels') !== 'all' ? [`channels=${v('channels')}`] : []));
    const file = this.file?.kind === kind ? this.file : null;
    if (kind === 'steer') {
      if (!file) throw new Error('choose the file of the steering vector first (Choose file…)');
      parts.push('vector=FILE:KEY', `scale=${v('scale') || '1'}`);
    }
    if (kind === 'patch-state') {
      if (!file) throw new Error('choose the dump whose state is patched in first (Choose file…: a dump written with inspect --states-at)');
      parts.push('from=FILE');
    }
    return parts.join(' ');
  }

  /** The target token the form names: an id (#42 or 42) or a token's exact text; undefined when empty. */
  private target(data: PanelData): number | undefined {
    const text = this.inputs.target.value;
    if (text.trim() === '') return undefined;
    const V = isLanguageModelConfig(data.model!.config) ? data.model!.config.vocabSize : 0;
    const id = /^#?\d+$/.test(text.trim()) ? Number(text.trim().replace('#', '')) : data.model?.vocab?.indexOf(text) ?? -1;
    if (!(id >= 0 && id < V)) throw new Error(`the target “${text}” is neither a token id below ${V} nor a token of the vocabulary`);
    return id;
  }

  private async run(): Promise<void> {
    const data = this.ctx.data();
    if (!data) return;
    let intervention: Intervention;
    let target: number | undefined;
    try {
      intervention = this.intervention();
      target = this.target(data);
    } catch (e) {
      this.problem.textContent = e instanceof Error ? e.message : String(e);
      return;
    }
    this.problem.textContent = '';
    await this.ctx.interventions.intervene([intervention], target).catch((e: unknown) => {
      this.problem.textContent = e instanceof Error ? e.message : String(e);
    });
  }

  private async pickFile(): Promise<void> {
    const model = this.ctx.data()?.model;
    const kind = this.kind.value;
    if (!model || !isLanguageModelConfig(model.config) || (kind !== 'steer' && kind !== 'patch-state')) return;
    try {
      const picked = await this.ctx.pickInterventionFile(kind, model.config.dModel);
      if (!picked) return;
      this.file = { kind, ...picked };
      this.showFields();
      this.problem.textContent = '';
    } catch (e) {
      this.problem.textContent = e instanceof Error ? e.message : String(e);
    }
  }

  private renderResult(data: PanelData): void {
    const o = this.ctx.interventions.outcome;
    this.clearButton.hidden = !o;
    if (!o || o.runId !== data.inspection.id) {
      this.result.replaceChildren(line('Run an intervention to see what changes downstream: the strip and the next-token view then show its effect position by position.'));
      return;
    }
    const { kl, dLoss, firstChanged, target } = o.effect;
    let worst = 0;
    for (let t = 1; t < kl.length; t++) if (kl[t] > kl[worst]) worst = t;
    const rows = [line(`${o.specs.join('; ')} · ${Math.round(o.forwardMs)} ms`, 'intervention-spec')];
    if (firstChanged === null) rows.push(line('No position’s next-token distribution changed (KL ≤ 1e-12 everywhere).', 'intervention-first'));
    else {
      rows.push(
        line(`First change at token ${tokenLabel(data, firstChanged)}`, 'intervention-first'),
        line(`Largest KL ${formatValue(kl[worst])} nats at token ${tokenLabel(data, worst)}`),
        line(`From the first change on: mean KL ${formatValue(meanFrom(kl, firstChanged))}, mean Δloss ${formatValue(meanFrom(dLoss, firstChanged))} nats`),
      );
    }
    const t = this.ctx.store.get().token;
    if (target && t !== null) {
      rows.push(line(`Target ${vocabText(data, target.id)} after token ${t}: ${formatPercent(target.clean[t])} → ${formatPercent(target.intervened[t])} (Δlogit ${formatValue(target.dLogit[t])})`, 'intervention-target-change'));
    }
    this.result.replaceChildren(...rows);
    this.result.dataset.spec = o.specs.join('; ');
  }
}

function choice(label: string, values: readonly string[]): HTMLSelectElement {
  const s = document.createElement('select');
  s.setAttribute('aria-label', label);
  for (const v of values) s.append(new Option(v, v));
  return s;
}

function line(text: string, className = ''): HTMLElement {
  const p = el('p', `intervention-line ${className}`.trim());
  p.textContent = text;
  return p;
}

export const interventionsView: ViewSpec = {
  id: 'interventions',
  title: 'Interventions',
  area: 'lower',
  empty: 'No inspection yet: run “Mamba Scope: Inspect File”, then ablate, scale, zero, knock out or steer at a token (or right-click it in the strip).',
  create: (ctx) => new InterventionsView(ctx),
};
