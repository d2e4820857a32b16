/**
 * The mambaScope.* settings, read in one place with their defaults and ranges, so every command
 * and the panel see the same values. Workspace Trust: mambaScope.modelPath is a
 * restrictedConfiguration (package.json), so in an untrusted workspace VS Code hides the value a
 * workspace's .vscode/settings.json sets, and only the user's own setting is read.
 */
import * as vscode from 'vscode';
import { GATED_NORMS, type GatedNorm } from '../engine/model/config';
import { BACKENDS, COLORMAPS, DEFAULT_CAUSAL_EPSILON, MAX_TOKENS, TOKEN_METRICS, type BackendPreference, type Colormap, type TokenMetric, type ViewSettings } from '../protocol';

export const SECTION = 'mambaScope';

export interface Settings extends ViewSettings {
  /** A model folder or .safetensors file; empty = the model bundled with the extension. */
  readonly modelPath: string;
  readonly maxTokens: number;
  /** mambaScope.runMemoryLimitMB: what one panel run may keep. */
  readonly runMemoryLimitMB: number;
  /** mambaScope.mamba2GatedNorm: whose Mamba-2 gated norm (config.ts: withGatedNorm). */
  readonly mamba2GatedNorm: GatedNorm;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], fallback: T): T {
  return allowed.includes(value as T) ? (value as T) : fallback;
}

function intIn(value: unknown, min: number, max: number, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? Math.min(max, Math.max(min, Math.round(value))) : fallback;
}

export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration(SECTION);
  const tau = c.get<number>('resetThreshold');
  const epsilon = c.get<number>('causalEpsilon');
  return {
    modelPath: (c.get<string>('modelPath') ?? '').trim(),
    backend: oneOf<BackendPreference>(c.get('backend'), ['auto', ...BACKENDS], 'auto'),
    maxTokens: intIn(c.get('maxTokens'), 1, MAX_TOKENS, 2048),
    runMemoryLimitMB: intIn(c.get('runMemoryLimitMB'), 16, 65536, 1200),
    mamba2GatedNorm: oneOf<GatedNorm>(c.get('mamba2GatedNorm'), GATED_NORMS, 'mamba_ssm'),
    colormap: oneOf<Colormap>(c.get('colormap'), COLORMAPS, 'viridis'),
    metric: oneOf<TokenMetric>(c.get('metric'), TOKEN_METRICS, 'delta'),
    defaultLayer: intIn(c.get('defaultLayer'), 0, 1 << 16, 0),
    resetThreshold: typeof tau === 'number' && tau > 0 && tau < 1 ? tau : 0.05,
    causalEpsilon: typeof epsilon === 'number' && epsilon > 0 && Number.isFinite(epsilon) ? epsilon : DEFAULT_CAUSAL_EPSILON,
  };
}

export function viewSettings(s: Settings): ViewSettings {
  return { backend: s.backend, colormap: s.colormap, metric: s.metric, defaultLayer: s.defaultLayer, resetThreshold: s.resetThreshold, causalEpsilon: s.causalEpsilon };
}
