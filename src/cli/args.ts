/**
 * A small strict argument parser: `--name value` and `--flag`, nothing else. Unknown or
 * malformed options are usage errors (exit 2), so a typo never silently changes a run.
 *
 * Not node:util.parseArgs: in its strict mode a value that starts with "-" is refused as
 * ambiguous, so `--states-at -1` (the last token) or `--layers -1` would need `--states-at=-1`;
 * and it keeps the last of a repeated option silently, where a repeat here is an error.
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  /** Takes a value (`--out x`) or is a boolean flag (`--json`). */
  readonly value: boolean;
  /** May be given more than once (`--intervene a --intervene b`): read with `list`. */
  readonly repeat?: boolean;
}

export type ParsedArgs = Map<string, string | true | string[]>;

export function parseArgs(argv: readonly string[], spec: Readonly<Record<string, OptionSpec>>): ParsedArgs {
  const out: ParsedArgs = new Map();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument "${a}"`);
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
    const s = spec[name];
    if (!s) throw new UsageError(`unknown option --${name}`);
    if (out.has(name) && !s.repeat) throw new UsageError(`--${name} given twice`);
    if (!s.value) {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      out.set(name, true);
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined || (inline === undefined && v.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
    const before = out.get(name);
    out.set(name, s.repeat ? [...(Array.isArray(before) ? before : []), v] : v);
  }
  return out;
}

/** Every value of a repeatable option, in the order given. */
export function list(args: ParsedArgs, name: string): string[] {
  const v = args.get(name);
  return Array.isArray(v) ? v : [];
}

export function optional(args: ParsedArgs, name: string): string | undefined {
  const v = args.get(name);
  return typeof v === 'string' ? v : undefined;
}

export function required(args: ParsedArgs, name: string): string {
  const v = optional(args, name);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.get(name) === true;
}

export function oneOf<T extends string>(args: ParsedArgs, name: string, choices: readonly T[], fallback: T): T {
  const v = optional(args, name) ?? fallback;
  if (!(choices as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}; got "${v}"`);
  return v as T;
}

/** "0,57,-1" → [0, 57, -1]. */
export function intList(args: ParsedArgs, name: string): number[] | undefined {
  const v = optional(args, name);
  if (v === undefined) return undefined;
  const items = v.split(',').map((s) => s.trim());
  if (items.some((s) => !/^-?\d+$/.test(s))) throw new UsageError(`--${name} must be a comma-separated list of integers; got "${v}"`);
  return items.map(Number);
}

export function positiveInt(args: ParsedArgs, name: string): number | undefined {
  const v = optional(args, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`--${name} must be a positive integer; got "${v}"`);
  return Number(v);
}

export function nonNegativeInt(args: ParsedArgs, name: string): number | undefined {
  const v = optional(args, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a non-negative integer; got "${v}"`);
  return Number(v);
}

export function number(args: ParsedArgs, name: string): number | undefined {
  const v = optional(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number; got "${v}"`);
  return n;
}

/** "--layers all|0,2,-1" → sorted layer indices (negative counts from the last layer). */
export function layerList(args: ParsedArgs, name: string, nLayer: number): number[] {
  const spec = optional(args, name);
  const all = Array.from({ length: nLayer }, (_, i) => i);
  if (spec === undefined || spec === 'all') return all;
  const items = spec.split(',').map((s) => s.trim());
  if (items.some((s) => !/^-?\d+$/.test(s))) throw new UsageError(`--${name} must be "all" or comma-separated integers; got "${spec}"`);
  const picked = new Set<number>();
  for (const item of items) {
    const i = Number(item) < 0 ? nLayer + Number(item) : Number(item);
    if (i < 0 || i >= nLayer) throw new UsageError(`--${name}: layer ${item} is outside a ${nLayer}-layer model`);
    picked.add(i);
  }
  return [...picked].sort((a, b) => a - b);
}
