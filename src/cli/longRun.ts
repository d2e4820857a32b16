/**
 * `inspect --positions SPEC`: the long-sequence run (issue 13). The float64 reference, tfjs (cpu,
 * wasm) or the native WebGPU engine runs the sequence in chunks with each layer's state carried (forwardInChunks), so it holds one
 * chunk's activations whatever the length; the dump holds what stays O(L): the logits at the
 * chosen positions, the next-token loss at every position, and each layer's final state and conv
 * context. Per-layer internals of every token (O(L × layers × channels)) are not written.
 */
import { LimitError } from '../engine/errors';
import { dumpKey } from '../engine/formats/dump';
import type { NamedTensor } from '../engine/formats/safetensors';
import { kindFor } from '../engine/layers';
import type { LanguageModelConfig, MambaConfig } from '../engine/model/config';
import type { LanguageModel } from '../engine/model/graph';
import { streamValues, weightValues } from '../engine/model/load';
import { forwardInChunks, type ChunkedRun } from '../engine/chunkedForward';
import type { Precision } from '../engine/model/params';
import { referenceForwardChunked } from '../engine/reference/forward';
import { tfjsChunkRunner } from '../engine/tfjs/chunkRunner';
import type { TfModel } from '../engine/tfjs/forward';
import { webgpuLongRun } from '../engine/webgpu/longRun';
import { WebGpuModel } from '../engine/webgpu/model';
import { UsageError } from './args';

/** Tokens per chunk of the long run. */
export const LONG_CHUNK = 2048;

/**
 * "0:65536:512,65535": ranges start:end[:step] (end exclusive) and single positions, negative
 * counting from the end; sorted and distinct, each checked against the sequence.
 */
export function parsePositions(spec: string, length: number): number[] {
  const out = new Set<number>();
  const at = (s: string) => {
    if (!/^-?\d+$/.test(s)) throw new UsageError(`--positions: "${s}" is not an integer (the form is start:end[:step] or a position, comma-separated)`);
    const v = Number(s);
    const q = v < 0 ? length + v : v;
    if (q < 0 || q > length) throw new UsageError(`--positions: ${v} is outside the ${length}-token sample`);
    return q;
  };
  for (const item of spec.split(',').map((s) => s.trim())) {
    const parts = item.split(':');
    if (parts.length === 1) {
      const q = at(parts[0]);
      if (q === length) throw new UsageError(`--positions: ${parts[0]} is outside the ${length}-token sample`);
      out.add(q);
    } else if (parts.length <= 3) {
      const [start, end] = [at(parts[0]), at(parts[1])];
      const step = parts[2] === undefined ? 1 : Number(parts[2]);
      if (!Number.isInteger(step) || step < 1) throw new UsageError(`--positions: step "${parts[2]}" is not a positive integer`);
      for (let t = start; t < end; t += step) out.add(t);
    } else {
      throw new UsageError(`--positions: "${item}" is not start:end[:step] or a position`);
    }
  }
  if (out.size === 0) throw new UsageError(`--positions "${spec}" names no position`);
  return [...out].sort((a, b) => a - b);
}

/** Bytes the long run holds in `precision` (the reference's float64, the fp32 engines' float32): the weights, one chunk's activations, the logits kept, the loss and the final states. */
export function longRunBytes(config: MambaConfig, tokens: number, positions: number, precision: Precision = 'float64'): number {
  const h = (kindFor(config).internals.h ?? [0]).reduce((a, b) => a * b, 1);
  const chunk = Math.min(tokens, LONG_CHUNK);
  // A chunk's stream through one layer, and its logits.
  const activations = streamValues(config, chunk) + chunk * config.vocabSize;
  // The loss is float64 on every engine.
  return (precision === 'float64' ? 8 : 4) * (weightValues(config).total + activations + positions * config.vocabSize + config.nLayer * (h + config.dConv * 2 * config.dInner)) + 8 * tokens;
}

export function checkLongRun(config: LanguageModelConfig, tokens: number, positions: number, limitMb: number, precision: Precision): void {
  if (config.arch === 'hybrid') throw new UsageError(`--positions carries each layer's scan state across chunks; ${config.family}'s attention layers have no fixed-size state: inspect a shorter text without --positions`);
  const bytes = longRunBytes(config, tokens, positions, precision);
  if (bytes > limitMb * 1e6) {
    throw new LimitError('inspect', `the long run of ${tokens} tokens needs ${(bytes / 1e6).toFixed(0)} MB (weights, one ${LONG_CHUNK}-token chunk, the logits at ${positions} positions), over the --max-memory limit of ${limitMb} MB: keep fewer --positions, or raise --max-memory`);
  }
}

/** The chunked forward on the float64 reference, on tfjs (a TfModel on the active tfjs backend), or on the native WebGPU engine. */
export async function longRun(model: LanguageModel<'float64'> | TfModel | WebGpuModel, config: LanguageModelConfig, ids: Int32Array, positions: number[], checkCancelled: () => void, onProgress: (tokens: number) => void): Promise<ChunkedRun> {
  const options = { chunkLength: LONG_CHUNK, logitsAt: positions, checkCancelled, onProgress };
  if (model instanceof WebGpuModel) return webgpuLongRun(model, ids, options);
  if ('layout' in model) return forwardInChunks(tfjsChunkRunner(model, checkCancelled), ids, config.vocabSize, Float32Array, options);
  return referenceForwardChunked(model, ids, options);
}

/**
 * The dump's tensors: input_ids, positions, logits [P, V], nll [L − 1], and per layer h [1, …] and
 * conv_state [1, K − 1, C] at h_tokens [L − 1]: the states a short dump holds at --states-at, so
 * a patch-state can continue from the end of a long run.
 */
export function longRunEntries(ids: Int32Array, run: ChunkedRun, stateShape: readonly number[]): NamedTensor[] {
  const last = Int32Array.of(ids.length - 1);
  return [
    { name: 'input_ids', tensor: { shape: [ids.length], data: ids } },
    { name: 'positions', tensor: { shape: [run.positions.length], data: run.positions } },
    { name: 'logits', tensor: run.logits },
    { name: 'nll', tensor: { shape: [run.nll.length], data: run.nll } },
    ...run.final.flatMap((carry, i): NamedTensor[] => [
      { name: dumpKey(i, 'h'), tensor: { shape: [1, ...stateShape], data: carry.h } },
      { name: dumpKey(i, 'h_tokens'), tensor: { shape: [1], data: last } },
      ...(carry.conv ? [{ name: dumpKey(i, 'conv_state'), tensor: { shape: [1, ...carry.conv.shape], data: carry.conv.data } }] : []),
    ]),
  ];
}
