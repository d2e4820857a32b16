/**
 * Reading config.json's fields: typed, with one clear error naming the file and the field. Shared
 * by the Mamba configs (config.ts) and the hybrid families (families/).
 */
import { InputError } from '../errors';

/** Reads typed fields with one clear error per missing or wrong value. */
export class ConfigFields {
  constructor(private readonly obj: Record<string, unknown>, private readonly source: string) {}

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  int(key: string, fallback?: number, min = 1): number {
    const v = this.obj[key] ?? fallback;
    if (v === undefined) throw new InputError(this.source, `is missing "${key}"`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new InputError(this.source, `"${key}" must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    }
    if (v > 1 << 24) throw new InputError(this.source, `"${key}" = ${v} is implausibly large for a Mamba model`);
    return v;
  }

  num(key: string, fallback: number): number {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== 'number' || Number.isNaN(v)) throw new InputError(this.source, `"${key}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== 'boolean') throw new InputError(this.source, `"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  sub(key: string): ConfigFields {
    const v = this.obj[key] ?? {};
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputError(this.source, `"${key}" must be an object`);
    return new ConfigFields(v as Record<string, unknown>, `${this.source} ${key}`);
  }

  /** The integer at `key`, or `auto` when the field is absent or "auto" (transformers' time_step_rank, mamba_d_head). */
  intOrAuto(key: string, auto: number): number {
    const v = this.obj[key];
    return v === undefined || v === 'auto' ? auto : this.int(key);
  }

  raw(key: string): unknown {
    return this.obj[key];
  }
}

/** [min, max] Δ is clamped to after softplus; transformers writes infinity as {"__float__": "Infinity"} (decoded by parseConfigJson). */
export function timeStepLimit(v: unknown, source: string): readonly [number, number] {
  if (v === undefined || v === null) return [0, Infinity];
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number') || !(v[0] <= v[1])) {
    throw new InputError(source, `"time_step_limit" must be [min, max], got ${JSON.stringify(v)}`);
  }
  return [v[0], v[1]];
}
