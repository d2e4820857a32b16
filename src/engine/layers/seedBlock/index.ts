/**
 * The design note's simplified block as a layer kind. It has no norm and no residual: its output
 * is the stream it passes on. A block file is a one-layer model with no embedding or lm_head.
 */
import type { InternalName } from '../../internals';
import type { SeedBlockConfig } from '../../model/config';
import type { LayerKind } from '../kind';
import { SEED_BLOCK_PARAMS } from './params';
import { seedBlockReference } from './reference';
import { seedBlockTfjs, type SeedBlockWeights } from './tfjs';

export const seedBlock: LayerKind<SeedBlockConfig, typeof SEED_BLOCK_PARAMS, SeedBlockWeights> = {
  id: 'seed',
  label: "the design note's simplified block",
  accepts: (config): config is SeedBlockConfig => config.arch === 'seed',
  params: SEED_BLOCK_PARAMS,
  // Δ is per channel: dt_proj widens the one dt to D.
  internals: (c) => {
    const D = [c.dModel], N = [c.dState];
    return { z: D, u: D, delta: D, B: N, C: N, y: D, h: [c.dModel, c.dState], out: D };
  },
  scanView: (c, p) => ({ aLog: p.A_log, D: p.D, groups: 1, channels: c.dModel, deltaWidth: c.dModel, deltaUnit: 'channels', stateWidth: c.dState }),
  reference: seedBlockReference,
  tfjs: seedBlockTfjs,
};

/** What run-block writes, in the design note's names: x_in and res are the layer's u and z; y before the gate, out after it. */
export const DESIGN_NOTE_OUTPUTS = { y: 'y', out: 'out', x_in: 'u', res: 'z', B: 'B', C: 'C', delta: 'delta' } as const satisfies Record<string, InternalName>;

export function designNoteOutputs<T>(internals: Partial<Record<InternalName, T>>): Record<keyof typeof DESIGN_NOTE_OUTPUTS, T> {
  const out = {} as Record<keyof typeof DESIGN_NOTE_OUTPUTS, T>;
  for (const [name, internal] of Object.entries(DESIGN_NOTE_OUTPUTS) as [keyof typeof DESIGN_NOTE_OUTPUTS, InternalName][]) {
    const t = internals[internal];
    if (!t) throw new Error(`the simplified block recorded no ${internal}`);
    out[name] = t;
  }
  return out;
}
