/**
 * patch-state (../interventions.ts StatePatch, docs/INTERVENTIONS.md) in the native forward, in
 * a module of its own because it reaches into two kernels: the scan replaces its state after the
 * patched token (scanShaders.ts: ScanKernelOptions.patched, words in Params written here), and
 * the conv reads the patch's context after that token (convSilu.ts, a Patch buffer made here),
 * as the float64 reference's selectiveScan and convInput do. Splitting the run at the token
 * would not do: y at the patched token already reads the patched state.
 */
import type { StatePatch } from '../interventions';
import type { BufferRange } from './kernel';
import type { LayerContext } from './layer';

/** Refuses a patch the plan cannot apply: its token must be one of the plan's (token −1, a chunk's carry, is ForwardPlanOptions.carryIn). */
export function checkPatch(layer: number, patch: StatePatch, L: number): void {
  if (!Number.isInteger(patch.token) || patch.token < 0 || patch.token >= L) {
    throw new RangeError(`layer ${layer}: patch-state's token ${patch.token} is outside the plan's ${L} tokens${patch.token === -1 ? ' (a state entering the sequence is the plan\'s carryIn)' : ''}`);
  }
}

/**
 * The patch's words in the scan's Params: its token, then the state [channels, N] as the states
 * are written. With a zero-state at the same token the reference empties the state (its reset
 * wins): the token word is then −1, which no token matches.
 */
export function scanPatchWords(label: string, patch: StatePatch, stateSize: number, reset?: ReadonlySet<number>): Float32Array<ArrayBuffer> {
  if (patch.h.length !== stateSize) throw new RangeError(`${label}: patch-state's state has ${patch.h.length} values, the layer's state ${stateSize}`);
  const words = new Float32Array(1 + stateSize);
  words[0] = reset?.has(patch.token) ? -1 : patch.token;
  words.set(patch.h, 1);
  return words;
}

/** What the conv and conv_state kernels of a patched layer bind (convSilu.ts: `patched`). */
export interface ConvPatchBinding {
  readonly storage: { readonly Patch: BufferRange };
  readonly uniforms: { readonly patchToken: number };
}

/** The patch's conv context [K − 1, C] in a buffer of the plan's, bound by the conv kernels; none without a patch or a context (K = 1). */
export function convPatchBinding(ctx: LayerContext, label: string, patch: StatePatch | undefined, K: number, C: number): ConvPatchBinding | undefined {
  if (!patch || K < 2) return undefined;
  if (patch.conv.length !== (K - 1) * C) throw new RangeError(`${label}: patch-state's conv context has ${patch.conv.length} values, the layer's ${K - 1} × ${C}`);
  return { storage: { Patch: { buffer: ctx.constant(`${label} patched conv context`, Float32Array.from(patch.conv)) } }, uniforms: { patchToken: patch.token } };
}

/** What tells plans of different patches apart (editsKey): the token and a digest of the values (a state may be millions of them). */
export function patchKey(patch: StatePatch): string {
  // FNV-1a over the values' bytes, two lanes for 64 bits.
  let a = 0x811c9dc5, b = 0x01000193 ^ patch.h.length;
  for (const values of [patch.h, patch.conv]) {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    for (let i = 0; i < bytes.length; i++) {
      a = Math.imul(a ^ bytes[i], 0x01000193);
      b = Math.imul(b ^ bytes[i] ^ (i & 0xff), 0x01000193);
    }
  }
  return `patch ${patch.token} ${patch.h.length}+${patch.conv.length} ${(a >>> 0).toString(16)}${(b >>> 0).toString(16)}`;
}
