/**
 * Interventions on a forward (issue 16): what a researcher changes inside the recurrence to see
 * what the model uses. Each is defined exactly in docs/INTERVENTIONS.md; the float64 reference
 * applies them (reference/forward.ts, through ForwardOptions.edits), and the tests check each
 * against a direct recomputation of its definition.
 *
 *   ablate-write layer=ℓ tokens=s[,…]          h_s = exp(Δ_s·A) ⊙ h_{s−1}: token s writes nothing
 *   scale-delta  layer=ℓ tokens=… factor=f [channels=…]   Δ ← f·Δ there (Mamba-2: channels are heads)
 *   zero-state   layer=ℓ token=t               h_t = 0 after token t's update (a forced reset)
 *   knockout     layer=ℓ from=s to=t0          token s's term C_t·(∏_{s<k≤t} Ā_k)·B̄_s·u_s left out of y_t, t ≥ t0
 *   steer        layer=ℓ tokens=… vector=FILE:KEY scale=α   α·v added to the stream entering layer ℓ
 *   patch-state  layer=ℓ token=t from=DUMP     h_t and the conv context after t replaced by DUMP's (another run's)
 *   ablate-path  layer=ℓ path=ssm|attention|mlp mode=zero|mean   a hybrid layer's path output replaced by 0 or its mean over positions
 * Token lists take positions and ranges start:end (end exclusive); negative positions count from the end.
 * What steer and patch-state read from files is read by interventionInputs.ts and handed to layerEdits.
 */
import { InputError } from './errors';

export type Intervention =
  | { readonly kind: 'ablate-write'; readonly layer: number; readonly tokens: readonly number[] }
  | { readonly kind: 'scale-delta'; readonly layer: number; readonly tokens: readonly number[]; readonly factor: number; readonly channels?: readonly number[] }
  | { readonly kind: 'zero-state'; readonly layer: number; readonly token: number }
  | { readonly kind: 'knockout'; readonly layer: number; readonly from: number; readonly to: number }
  | { readonly kind: 'steer'; readonly layer: number; readonly tokens: readonly number[]; readonly vector: { readonly file: string; readonly key: string }; readonly scale: number }
  | { readonly kind: 'patch-state'; readonly layer: number; readonly token: number; readonly from: string }
  | { readonly kind: 'ablate-path'; readonly layer: number; readonly path: PathAblation['path']; readonly mode: PathAblation['mode'] };

export const INTERVENTION_KINDS = ['ablate-write', 'scale-delta', 'zero-state', 'knockout', 'steer', 'patch-state', 'ablate-path'] as const;
export const ABLATED_PATHS = ['ssm', 'attention', 'mlp'] as const;
export const PATH_ABLATION_MODES = ['zero', 'mean'] as const;

/** What the scan of one layer is told to change (token positions resolved). */
export interface ScanEdit {
  /** Tokens whose write Δ·u·B is dropped. */
  readonly noWrite?: ReadonlySet<number>;
  /** Tokens after whose update the state is set to zero. */
  readonly reset?: ReadonlySet<number>;
  /** The token whose term is left out of y at positions ≥ from (its write still enters the state). */
  readonly knockout?: { readonly source: number; readonly from: number };
}

/**
 * patch-state: another run's state and conv context after token `token`. The scan's state after
 * that token's update becomes `h` (the layer's state shape, [D, N] or [heads, P, N], flattened),
 * and the conv of positions token+1 … token+K−1 reads `conv` ([K − 1, conv channels], the
 * pre-conv inputs of positions token−K+2 … token, oldest first) where it would read this run's.
 * Token −1 is the state entering the sequence: how the fp32 engines take a chunk's carry
 * (LayerCarry) in a long run (the float64 reference takes it as its layers' `carry`).
 */
export interface StatePatch {
  readonly token: number;
  readonly h: Float64Array;
  readonly conv: Float64Array;
}

/** ablate-path (hybrid layers): a branch's output replaced by zero, or by its mean over the sample's positions. */
export interface PathAblation {
  readonly path: (typeof ABLATED_PATHS)[number];
  readonly mode: (typeof PATH_ABLATION_MODES)[number];
}

/** Everything one layer is told to change. */
export interface LayerEdit {
  readonly scan: ScanEdit;
  /** One per layer. */
  readonly patch?: StatePatch;
  readonly ablatePath?: readonly PathAblation[];
  /** Δ multiplied by `factor` at these tokens, in these columns of Δ (all when absent). */
  readonly deltaScale?: readonly { readonly tokens: ReadonlySet<number>; readonly factor: number; readonly columns?: ReadonlySet<number> }[];
  /** Added to the stream entering the layer at these tokens. */
  readonly steer?: readonly { readonly tokens: ReadonlySet<number>; readonly vector: Float64Array; readonly scale: number }[];
}

const int = (source: string, what: string, s: string | undefined): number => {
  if (s === undefined || !/^-?\d+$/.test(s)) throw new InputError(source, `${what} must be an integer, got ${JSON.stringify(s ?? '')}`);
  return Number(s);
};

function oneOf<T extends string>(source: string, what: string, values: readonly T[], s: string | undefined): T {
  if (!values.includes(s as T)) throw new InputError(source, `needs ${what}=${values.join('|')}, got ${JSON.stringify(s ?? '')}`);
  return s as T;
}

/** "3,7,10:20" → [3, 7, 10 … 19], unresolved (negative positions stay negative). */
function tokenList(source: string, s: string | undefined): number[] {
  if (!s) throw new InputError(source, 'needs tokens=… (positions and start:end ranges, comma-separated)');
  return s.split(',').flatMap((item) => {
    const [a, b, extra] = item.split(':');
    if (extra !== undefined) throw new InputError(source, `"${item}" is not a position or a start:end range`);
    if (b === undefined) return [int(source, 'a token', a)];
    const [start, end] = [int(source, 'a range start', a), int(source, 'a range end', b)];
    if (end <= start) throw new InputError(source, `the range ${item} is empty`);
    return Array.from({ length: end - start }, (_, i) => start + i);
  });
}

/** Parses one intervention: its kind, then key=value pairs; one line naming the problem otherwise. */
export function parseIntervention(text: string): Intervention {
  const source = `intervention "${text}"`;
  const [kind, ...pairs] = text.trim().split(/\s+/);
  const fields = new Map<string, string>();
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq < 1) throw new InputError(source, `"${p}" is not key=value`);
    fields.set(p.slice(0, eq), p.slice(eq + 1));
  }
  const allowed: Record<string, readonly string[]> = {
    'ablate-write': ['layer', 'tokens'],
    'scale-delta': ['layer', 'tokens', 'factor', 'channels'],
    'zero-state': ['layer', 'token'],
    knockout: ['layer', 'from', 'to'],
    steer: ['layer', 'tokens', 'vector', 'scale'],
    'patch-state': ['layer', 'token', 'from'],
    'ablate-path': ['layer', 'path', 'mode'],
  };
  const keys = allowed[kind];
  if (!keys) throw new InputError(source, `"${kind}" is not an intervention (${INTERVENTION_KINDS.join(', ')})`);
  for (const k of fields.keys()) if (!keys.includes(k)) throw new InputError(source, `${kind} takes ${keys.join(', ')}, not ${k}`);
  const layer = int(source, 'layer', fields.get('layer'));
  switch (kind) {
    case 'ablate-write':
      return { kind, layer, tokens: tokenList(source, fields.get('tokens')) };
    case 'scale-delta': {
      const factor = Number(fields.get('factor'));
      if (!fields.has('factor') || !Number.isFinite(factor)) throw new InputError(source, 'needs factor=<a finite number>');
      const channels = fields.get('channels');
      return { kind, layer, tokens: tokenList(source, fields.get('tokens')), factor, ...(channels ? { channels: tokenList(source, channels) } : {}) };
    }
    case 'zero-state':
      return { kind, layer, token: int(source, 'token', fields.get('token')) };
    case 'knockout':
      return { kind, layer, from: int(source, 'from', fields.get('from')), to: int(source, 'to', fields.get('to')) };
    case 'patch-state': {
      const from = fields.get('from');
      if (!from) throw new InputError(source, 'needs from=DUMP (a dump written with inspect --states-at holding the token)');
      return { kind, layer, token: int(source, 'token', fields.get('token')), from };
    }
    case 'ablate-path':
      return { kind, layer, path: oneOf(source, 'path', ABLATED_PATHS, fields.get('path')), mode: oneOf(source, 'mode', PATH_ABLATION_MODES, fields.get('mode') ?? 'zero') };
    default: {
      const vector = fields.get('vector') ?? '';
      const colon = vector.lastIndexOf(':');
      if (colon < 1 || colon === vector.length - 1) throw new InputError(source, 'needs vector=FILE:KEY (a tensor of d_model values in a safetensors file)');
      const scale = fields.has('scale') ? Number(fields.get('scale')) : 1;
      if (!Number.isFinite(scale)) throw new InputError(source, 'scale must be a finite number');
      return { kind: 'steer', layer, tokens: tokenList(source, fields.get('tokens')), vector: { file: vector.slice(0, colon), key: vector.slice(colon + 1) }, scale };
    }
  }
}

/** One line for a dump's metadata and the CLI's summary. */
export function describeIntervention(i: Intervention): string {
  switch (i.kind) {
    case 'ablate-write': return `ablate-write layer=${i.layer} tokens=${i.tokens.join(',')}`;
    case 'scale-delta': return `scale-delta layer=${i.layer} tokens=${i.tokens.join(',')} factor=${i.factor}${i.channels ? ` channels=${i.channels.join(',')}` : ''}`;
    case 'zero-state': return `zero-state layer=${i.layer} token=${i.token}`;
    case 'knockout': return `knockout layer=${i.layer} from=${i.from} to=${i.to}`;
    case 'steer': return `steer layer=${i.layer} tokens=${i.tokens.join(',')} vector=${i.vector.file}:${i.vector.key} scale=${i.scale}`;
    case 'patch-state': return `patch-state layer=${i.layer} token=${i.token} from=${i.from}`;
    case 'ablate-path': return `ablate-path layer=${i.layer} path=${i.path} mode=${i.mode}`;
  }
}

/** What layerEdits checks the interventions against. */
export interface EditedModel {
  readonly layers: number;
  /** Columns of Δ: Mamba-1's channels, Mamba-2's heads. */
  readonly deltaColumns: number;
  readonly dModel: number;
  /** The paths each layer records (a hybrid layer's ssm_out, attn_out, mlp_out), by layer index: what ablate-path may replace. None: a pure Mamba model's. */
  readonly paths?: readonly (readonly PathAblation['path'][])[];
}

/** What the interventions read from files, each intervention's own: a steer's vector, a patch-state's state (interventionInputs.ts). */
export type InterventionInputs = ReadonlyMap<Intervention, Float64Array | StatePatch>;

/**
 * The edits each layer gets, positions resolved against the sequence and checked against the
 * model; `inputs` holds what each steer and patch-state read (interventionInputs.ts).
 */
export function layerEdits(interventions: readonly Intervention[], L: number, model: EditedModel, inputs: InterventionInputs = new Map()): Map<number, LayerEdit> {
  const { layers, deltaColumns } = model;
  const edits = new Map<number, { noWrite: Set<number>; reset: Set<number>; knockout?: { source: number; from: number }; patch?: StatePatch; ablatePath: PathAblation[]; deltaScale: NonNullable<LayerEdit['deltaScale']>[number][]; steer: NonNullable<LayerEdit['steer']>[number][] }>();
  for (const i of interventions) {
    const source = `intervention "${describeIntervention(i)}"`;
    if (!Number.isInteger(i.layer) || i.layer < 0 || i.layer >= layers) throw new InputError(source, `layer ${i.layer} is outside the model's ${layers} layers`);
    const at = (t: number) => {
      const q = t < 0 ? L + t : t;
      if (!Number.isInteger(q) || q < 0 || q >= L) throw new InputError(source, `token ${t} is outside the ${L}-token sample`);
      return q;
    };
    let e = edits.get(i.layer);
    if (!e) edits.set(i.layer, (e = { noWrite: new Set(), reset: new Set(), ablatePath: [], deltaScale: [], steer: [] }));
    if (i.kind === 'ablate-write') i.tokens.forEach((t) => e.noWrite.add(at(t)));
    if (i.kind === 'zero-state') e.reset.add(at(i.token));
    if (i.kind === 'scale-delta') {
      const columns = i.channels?.map((c) => {
        if (!Number.isInteger(c) || c < 0 || c >= deltaColumns) throw new InputError(source, `channel ${c} is outside Δ's ${deltaColumns} columns`);
        return c;
      });
      e.deltaScale.push({ tokens: new Set(i.tokens.map(at)), factor: i.factor, ...(columns ? { columns: new Set(columns) } : {}) });
    }
    if (i.kind === 'knockout') {
      if (e.knockout) throw new InputError(source, `layer ${i.layer} already has a knockout: one per layer`);
      const [s, t0] = [at(i.from), at(i.to)];
      if (t0 < s) throw new InputError(source, `to=${i.to} comes before from=${i.from}: token s only reaches later positions`);
      e.knockout = { source: s, from: t0 };
    }
    if (i.kind === 'patch-state') {
      const patch = inputs.get(i);
      if (!patch || patch instanceof Float64Array) throw new InputError(source, 'its dump was not read');
      if (e.patch) throw new InputError(source, `layer ${i.layer} already has a patch-state: one per layer`);
      e.patch = patch;
    }
    if (i.kind === 'ablate-path') {
      const paths = model.paths?.[i.layer] ?? [];
      if (!paths.includes(i.path)) throw new InputError(source, paths.length ? `layer ${i.layer} has no ${i.path} path (its paths: ${paths.join(', ')})` : `layer ${i.layer} has no paths to ablate: ablate-path is for a hybrid model's layers`);
      if (e.ablatePath.some((a) => a.path === i.path)) throw new InputError(source, `layer ${i.layer}'s ${i.path} path is already ablated`);
      e.ablatePath.push({ path: i.path, mode: i.mode });
    }
    if (i.kind === 'steer') {
      const vector = inputs.get(i);
      if (!(vector instanceof Float64Array)) throw new InputError(source, 'its vector was not read');
      if (vector.length !== model.dModel) throw new InputError(source, `the vector ${i.vector.key} has ${vector.length} values; the stream has d_model ${model.dModel}`);
      e.steer.push({ tokens: new Set(i.tokens.map(at)), vector, scale: i.scale });
    }
  }
  for (const [layer, e] of edits) {
    if (e.patch && e.reset.has(e.patch.token)) throw new InputError(`layer ${layer}`, `has both a zero-state and a patch-state at token ${e.patch.token}: choose one`);
  }
  return new Map([...edits].map(([layer, e]) => [layer, {
    scan: { ...(e.noWrite.size ? { noWrite: e.noWrite } : {}), ...(e.reset.size ? { reset: e.reset } : {}), ...(e.knockout ? { knockout: e.knockout } : {}) },
    ...(e.patch ? { patch: e.patch } : {}),
    ...(e.ablatePath.length ? { ablatePath: e.ablatePath } : {}),
    ...(e.deltaScale.length ? { deltaScale: e.deltaScale } : {}),
    ...(e.steer.length ? { steer: e.steer } : {}),
  }]));
}

/** Δ with the edit's scalings applied (a copy; `delta` [L, columns] is not changed). */
export function scaledDelta(delta: { readonly shape: readonly number[]; readonly data: Float64Array }, edit?: LayerEdit): { shape: readonly number[]; data: Float64Array } {
  if (!edit?.deltaScale) return delta;
  const [L, W] = delta.shape;
  const data = Float64Array.from(delta.data);
  for (const s of edit.deltaScale) {
    for (const t of s.tokens) {
      if (t >= L) continue;
      for (let c = 0; c < W; c++) if (!s.columns || s.columns.has(c)) data[t * W + c] *= s.factor;
    }
  }
  return { shape: delta.shape, data };
}
