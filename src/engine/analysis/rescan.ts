/**
 * Rescan: recompute each layer's selective scan from the dump's own u, Δ, B, C with the model's
 * A and D, and compare with the dump's y and h. Everything before the scan comes from the dump,
 * so any error left is the scan's: its algorithm (mode), its precision or its discretization.
 * Alongside, per channel, how far the exact zero-order hold is from the Euler step mamba_ssm uses.
 */
import { InputError } from '../errors';
import { dumpKey, dumpLayers } from '../formats/dump';
import type { TensorStore } from '../formats/safetensors';
import type { ScanView } from '../layers/kind';
import type { LoadedModel } from '../model/graph';
import type { F64 } from '../reference/ops';
import type { Precision } from '../reference/precision';
import { gatedOutput, scanVariant, type ScanInputs, type ScanVariant } from '../reference/scanVariants';
import { shapeString } from '../tensor';
import { diffArrays, loosest, tensorToleranceClass, toleranceWith, type Divergence, type Tolerance, type ToleranceClass, type ToleranceOverride } from './compare';
import { scanOf } from '../layers/kind';

export interface QuantityError {
  readonly normalizedError: number;
  readonly maxAbsError: number;
  readonly firstDivergence: Divergence | null;
}

/** Per channel, max over tokens of |y_exact − y_euler| (both fp64 sequential). */
export interface ZohDifference {
  readonly maxAbs: Float64Array;
  /** maxAbs / max_t |y_euler| of the channel. */
  readonly relative: Float64Array;
}

export interface LayerRescan {
  readonly layer: number;
  readonly tolerance: Tolerance;
  readonly y: QuantityError;
  /** null when the dump has no states for this layer. */
  readonly h: QuantityError | null;
  /** y ⊙ silu(z), what mamba_ssm's kernel returns when given z; null when the dump has no z. */
  readonly gated: QuantityError | null;
  readonly zoh: ZohDifference;
}

export interface RescanOptions {
  readonly variant: ScanVariant;
  /** Default: every layer of the dump that has u, delta, B, C and y. */
  readonly layers?: readonly number[];
  readonly tolerance?: ToleranceOverride;
}

const NEEDED = ['u', 'delta', 'B', 'C', 'y'] as const;

/** The scan parameters of one layer of the model and the widths they imply. */
function layerScan(model: LoadedModel<'float64'>, layer: number, source: string): ScanView<'float64'> {
  const layers = model.layers;
  if (layer >= layers.length) {
    throw new InputError(source, layers.length === 1 ? `has layer ${layer} but the model has one layer` : `has layer ${layer} but the model has ${layers.length} layers`);
  }
  return scanOf(layers[layer]);
}

function checkShape(store: TensorStore, name: string, got: readonly number[], want: readonly number[]): void {
  if (got.length !== want.length || got.some((d, k) => d !== want[k])) {
    throw new InputError(store.name, `tensor "${name}" has shape ${shapeString(got)} but the model's scan needs ${shapeString(want)}`);
  }
}

async function scanInputs(dump: TensorStore, model: LoadedModel<'float64'>, layer: number): Promise<ScanInputs> {
  const p = layerScan(model, layer, dump.name);
  const read = async (q: string, width: number, length?: number) => {
    const t = await dump.readFloat(dumpKey(layer, q), 'float64');
    checkShape(dump, dumpKey(layer, q), t.shape, [length ?? t.shape[0], width]);
    return t;
  };
  const u = await read('u', p.channels);
  const L = u.shape[0];
  return { u, delta: await read('delta', p.deltaWidth, L), B: await read('B', p.stateWidth, L), C: await read('C', p.stateWidth, L), aLog: p.aLog, D: p.D, groups: p.groups };
}

/** The states' token positions: increasing (as every dump writer stores them) and inside the sample. */
async function stateTokens(dump: TensorStore, layer: number, length: number): Promise<Int32Array | null> {
  const hKey = dumpKey(layer, 'h');
  const tKey = dumpKey(layer, 'h_tokens');
  if (!dump.info(hKey) || !dump.info(tKey)) return null;
  const raw = (await dump.readFloat(tKey, 'float64')).data;
  const at = Int32Array.from(raw);
  at.forEach((t, k) => {
    if (t !== raw[k] || t < 0 || t >= length) throw new InputError(dump.name, `${tKey}[${k}] = ${raw[k]} is not a token position of the ${length}-token sample`);
    if (k > 0 && t <= at[k - 1]) throw new InputError(dump.name, `${tKey} is not strictly increasing (${at[k - 1]} then ${t})`);
  });
  return at;
}

function quantityError(ref: F64, got: F64, tol: Tolerance, tokenOf?: (row: number) => number): QuantityError {
  const d = diffArrays(ref.data, got.data, ref.shape, tol, tokenOf);
  return { normalizedError: d.normalizedError, maxAbsError: d.maxAbsError, firstDivergence: d.firstDivergence };
}

const PRECISION_TOLERANCE: Readonly<Record<Precision, ToleranceClass>> = { fp64: 'fp32', fp32: 'fp32', fp16: 'fp16', bf16: 'bf16' };

function zohDifference(inputs: ScanInputs, chunkSize: number): ZohDifference {
  const none = new Int32Array(0);
  const euler = scanVariant(inputs, { precision: 'fp64', mode: 'sequential', zoh: 'euler', chunkSize }, none).y;
  const exact = scanVariant(inputs, { precision: 'fp64', mode: 'sequential', zoh: 'exact', chunkSize }, none).y;
  const [L, channels] = euler.shape;
  const maxAbs = new Float64Array(channels);
  const scale = new Float64Array(channels);
  for (let t = 0; t < L; t++) {
    for (let c = 0; c < channels; c++) {
      const i = t * channels + c;
      maxAbs[c] = Math.max(maxAbs[c], Math.abs(exact.data[i] - euler.data[i]));
      scale[c] = Math.max(scale[c], Math.abs(euler.data[i]));
    }
  }
  return { maxAbs, relative: maxAbs.map((m, c) => (scale[c] === 0 ? m : m / scale[c])) };
}

export async function rescanLayer(model: LoadedModel<'float64'>, dump: TensorStore, layer: number, options: RescanOptions): Promise<LayerRescan> {
  for (const q of NEEDED) {
    if (!dump.info(dumpKey(layer, q))) throw new InputError(dump.name, `has no ${dumpKey(layer, q)}: rescan needs u, delta, B, C and y of the layer`);
  }
  const inputs = await scanInputs(dump, model, layer);
  const L = inputs.u.shape[0];
  const at = await stateTokens(dump, layer, L);
  const result = scanVariant(inputs, options.variant, at ?? new Int32Array(0));
  const yRef = await dump.readFloat(dumpKey(layer, 'y'), 'float64');
  checkShape(dump, dumpKey(layer, 'y'), yRef.shape, result.y.shape);
  const tolerance = toleranceWith(loosest(tensorToleranceClass(dump, dumpKey(layer, 'y')), PRECISION_TOLERANCE[options.variant.precision]), options.tolerance);
  let h: QuantityError | null = null;
  if (at) {
    const hRef = await dump.readFloat(dumpKey(layer, 'h'), 'float64');
    if (hRef.data.length !== result.h.data.length) {
      throw new InputError(dump.name, `tensor "${dumpKey(layer, 'h')}" has shape ${shapeString(hRef.shape)} but the scan's states are ${shapeString(result.h.shape)}`);
    }
    h = quantityError(hRef, { shape: hRef.shape, data: result.h.data }, tolerance, (row) => at[row]);
  }
  let gated: QuantityError | null = null;
  if (dump.info(dumpKey(layer, 'z'))) {
    const z = await dump.readFloat(dumpKey(layer, 'z'), 'float64');
    checkShape(dump, dumpKey(layer, 'z'), z.shape, yRef.shape);
    gated = quantityError(gatedOutput(yRef, z, 'fp64'), gatedOutput(result.y, z, options.variant.precision), tolerance);
  }
  return { layer, tolerance, y: quantityError(yRef, result.y, tolerance), h, gated, zoh: zohDifference(inputs, options.variant.chunkSize) };
}

/** The layers of the dump that hold a scan's inputs and output. */
export function rescannableLayers(dump: TensorStore): number[] {
  return dumpLayers(dump).filter((i) => NEEDED.every((q) => dump.info(dumpKey(i, q))));
}

export async function rescanDump(model: LoadedModel<'float64'>, dump: TensorStore, options: RescanOptions): Promise<LayerRescan[]> {
  const layers = options.layers ?? rescannableLayers(dump);
  if (!layers.length) throw new InputError(dump.name, 'has no layer with u, delta, B, C and y to rescan (it needs a dump of internals, from mamba-scope inspect or tools/dump_mamba.py)');
  const out: LayerRescan[] = [];
  for (const layer of layers) out.push(await rescanLayer(model, dump, layer, options));
  return out;
}

function errorJson(e: QuantityError) {
  return {
    normalizedError: e.normalizedError,
    maxAbsError: e.maxAbsError,
    firstDivergence: e.firstDivergence && { index: e.firstDivergence.index, token: e.firstDivergence.token },
  };
}

/** The `rescan --json` contract (issue 5), with extras under their own keys. */
export function rescanJson(layers: readonly LayerRescan[], variant: ScanVariant): unknown {
  return {
    layers: layers.map((l) => ({
      layer: l.layer,
      y: errorJson(l.y),
      h: l.h && errorJson(l.h),
      gated: l.gated && errorJson(l.gated),
      zohVsEuler: { maxAbsPerChannel: [...l.zoh.maxAbs], relativePerChannel: [...l.zoh.relative] },
      tolerance: l.tolerance,
    })),
    precision: variant.precision,
    mode: variant.mode,
    zoh: variant.zoh,
    chunkSize: variant.chunkSize,
  };
}
