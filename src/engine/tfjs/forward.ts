/**
 * The forward pass on TensorFlow.js, on whichever backend is active (cpu in Node; webgpu,
 * webgl, wasm in the webview). Same architectures, same internals and names as the float64
 * reference, which it is tested against. Weights are uploaded once (createTfModel) and reused
 * for every run; only the requested layers' internals are downloaded.
 */
import * as tf from '@tensorflow/tfjs-core';
import { resolvePositions, wantsLayer, type ForwardOptions, type ForwardResult, type InternalName, type LayerInternals } from '../internals';
import type { ModelConfig } from '../model/config';
import type { LoadedModel } from '../model/load';
import { mamba2ConvDim } from '../model/mamba2';
import type { Param } from '../model/params';
import type { Predictions } from '../predictions';
import type { Tensor } from '../tensor';
import { scanKernelsFor, type ScanKernels } from './scan';

type W = tf.Tensor;

interface TfLayer {
  readonly norm?: W;
  readonly inProjW: W;
  readonly inProjB?: W;
  /** conv1d weight [C, K] (for fused conv kernels) and as the depthwise filter [K, 1, C, 1]. */
  readonly convW?: W;
  readonly convFilter?: W;
  readonly convB?: W;
  readonly xProjW?: W;
  readonly xProjB?: W;
  readonly dtProjW?: W;
  readonly dtProjB?: W;
  readonly dtBias?: W;
  /** −exp(A_log), computed once. */
  readonly A: W;
  readonly D: W;
  readonly gatedNorm?: W;
  readonly outProjW?: W;
  readonly outProjB?: W;
}

/**
 * How the projection weights are stored and multiplied. 'in-out': transposed once at upload
 * ([in, out]), multiplied as x · wᵀ with no transposed operand: 35 % faster on tfjs-webgpu.
 * 'out-in': torch's [out, in], multiplied as (w · xᵀ)ᵀ: on wasm a weight in the second operand is
 * packed by XNNPACK into a cached copy, which doubles the weights in the wasm heap (+490 MiB at
 * mamba-130m); as the first operand it is not, for 9 % more time per projection.
 */
export type WeightLayout = 'in-out' | 'out-in';

export function layoutFor(backend: string): WeightLayout {
  return backend === 'wasm' ? 'out-in' : 'in-out';
}

/** The projection weights of a layer: stored in the model's WeightLayout. */
const PROJECTIONS = ['inProjW', 'xProjW', 'dtProjW', 'outProjW'] as const;

export interface TfModel {
  readonly config: ModelConfig;
  readonly layout: WeightLayout;
  readonly embedding?: W;
  readonly layers: readonly TfLayer[];
  readonly normF?: W;
  readonly lmHead?: W;
  dispose(): void;
}

export function createTfModel(model: LoadedModel<'float32'>, layout: WeightLayout = layoutFor(tf.getBackend())): TfModel {
  const owned: W[] = [];
  const up = (p: Param<'float32'> | undefined): W | undefined => {
    if (!p) return undefined;
    const t = tf.tensor(p.data, [...p.shape], 'float32');
    owned.push(t);
    return t;
  };
  const req = (p: Param<'float32'>): W => up(p) as W;
  const keep = (t: W): W => {
    owned.push(t);
    return t;
  };
  /** A projection weight in `layout`. */
  const reqT = (p: Param<'float32'>): W => (layout === 'out-in' ? req(p) : keep(tf.tidy(() => tf.transpose(tf.tensor(p.data, [...p.shape] as [number, number])))));
  const negExp = (p: Param<'float32'>) => keep(tf.tidy(() => tf.neg(tf.exp(tf.tensor(p.data, [...p.shape])))));
  const convFilter = (p: Param<'float32'>) => {
    const [C, K] = p.shape;
    return keep(tf.tidy(() => tf.reshape(tf.transpose(tf.tensor(p.data, [C, K])), [K, 1, C, 1])));
  };
  const dispose = () => owned.forEach((t) => t.dispose());
  /** Embedding, final norm and lm_head (the embedding itself when tied), shared by both LMs. */
  const backbone = (p: { embedding: Param<'float32'>; normF: Param<'float32'>; lmHead: Param<'float32'> }) => {
    const embedding = req(p.embedding);
    return { embedding, normF: req(p.normF), lmHead: p.lmHead === p.embedding ? embedding : req(p.lmHead) };
  };
  const c = model.config;
  switch (c.arch) {
    case 'mamba1': {
      const p = (model as Extract<LoadedModel<'float32'>, { config: { arch: 'mamba1' } }>).params;
      return {
        config: c,
        layout,
        ...backbone(p),
        layers: p.layers.map((l) => ({
          norm: req(l.norm), inProjW: reqT(l.inProjW), inProjB: up(l.inProjB), convW: req(l.convW), convFilter: convFilter(l.convW), convB: up(l.convB),
          xProjW: reqT(l.xProjW), dtProjW: reqT(l.dtProjW), dtProjB: req(l.dtProjB), A: negExp(l.A_log), D: req(l.D),
          outProjW: reqT(l.outProjW), outProjB: up(l.outProjB),
        })),
        dispose,
      };
    }
    case 'mamba2': {
      const p = (model as Extract<LoadedModel<'float32'>, { config: { arch: 'mamba2' } }>).params;
      return {
        config: c,
        layout,
        ...backbone(p),
        layers: p.layers.map((l) => ({
          norm: req(l.norm), inProjW: reqT(l.inProjW), inProjB: up(l.inProjB), convW: req(l.convW), convFilter: convFilter(l.convW), convB: up(l.convB),
          dtBias: req(l.dtBias), A: negExp(l.A_log), D: req(l.D), gatedNorm: req(l.gatedNorm), outProjW: reqT(l.outProjW), outProjB: up(l.outProjB),
        })),
        dispose,
      };
    }
    case 'seed': {
      const p = (model as Extract<LoadedModel<'float32'>, { config: { arch: 'seed' } }>).params;
      return {
        config: c,
        layout,
        layers: [{ inProjW: reqT(p.inProjW), inProjB: req(p.inProjB), xProjW: reqT(p.xProjW), xProjB: req(p.xProjB), dtProjW: reqT(p.dtProjW), dtProjB: req(p.dtProjB), A: negExp(p.A_log), D: req(p.D) }],
        dispose,
      };
    }
  }
}

/**
 * The same weights on the current backend, read back from the backend that holds them, and the
 * old copies freed. A backend switch so needs no float32 copy of the checkpoint in JS memory:
 * at most one tensor is in transit at a time. Tied weights stay one tensor.
 */
export async function moveTfModel(model: TfModel): Promise<TfModel> {
  const layout = layoutFor(tf.getBackend());
  const moved = new Map<W, W>();
  /** `t` on the current backend; `transpose` turns a projection into the new backend's layout. */
  const move = async <T extends W | undefined>(t: T, transpose = false): Promise<T> => {
    if (!t) return t;
    let m = moved.get(t);
    if (!m) {
      m = tf.tensor(await t.data(), t.shape, t.dtype);
      if (transpose) {
        const turned = tf.transpose(m);
        m.dispose();
        m = turned;
      }
      moved.set(t, m);
      t.dispose();
    }
    return m as T;
  };
  const relayout = layout !== model.layout;
  const dispose = () => moved.forEach((t) => t.dispose());
  try {
    const layers: TfLayer[] = [];
    for (const layer of model.layers) {
      const next: Record<string, W | undefined> = {};
      for (const [key, t] of Object.entries(layer)) next[key] = await move(t, relayout && (PROJECTIONS as readonly string[]).includes(key));
      layers.push(next as unknown as TfLayer);
    }
    const [embedding, normF, lmHead] = [await move(model.embedding), await move(model.normF), await move(model.lmHead)];
    return { config: model.config, layout, embedding, normF, lmHead, layers, dispose };
  } catch (e) {
    // Half moved is no model: the caller must load the weights again.
    dispose();
    model.dispose();
    throw e;
  }
}

// --- building blocks ------------------------------------------------------------------------------

/** torch.nn.Linear with its weight stored transposed: x [L, in] · wT [in, out] (+ b). */
function linear(x: W, w: W, layout: WeightLayout, b?: W): W {
  return tf.tidy(() => {
    const y = layout === 'in-out' ? tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D) : tf.transpose(tf.matMul(w as tf.Tensor2D, tf.transpose(x) as tf.Tensor2D));
    return b ? tf.add(y, b) : y;
  });
}

/** Logits of some rows: lm_head stays [V, H] in every layout (the embedding gather needs it so). */
function headLogits(rows: W, lmHead: W, layout: WeightLayout): W {
  return tf.tidy(() =>
    layout === 'in-out'
      ? tf.matMul(rows as tf.Tensor2D, lmHead as tf.Tensor2D, false, true)
      : tf.transpose(tf.matMul(lmHead as tf.Tensor2D, tf.transpose(rows) as tf.Tensor2D)),
  );
}

/*
 * Each building block frees its own temporaries (an inner tf.tidy) instead of leaving them to the
 * layer's tidy: on the wasm and cpu backends they live in the webview's memory, and the wasm heap
 * never shrinks, so a layer's peak of temporaries stays in the panel for good.
 */

function rmsNorm(x: W, weight: W, eps: number, groups = 1): W {
  return tf.tidy(() => {
    const [L, H] = x.shape;
    const g = tf.reshape(x, [L, groups, H / groups]);
    const normed = tf.mul(g, tf.rsqrt(tf.add(tf.mean(tf.square(g), -1, true), eps)));
    return tf.mul(tf.reshape(normed, [L, H]), weight);
  });
}

function silu(x: W): W {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** torch softplus (threshold 20): x above 20 passes through, avoiding exp overflow. */
function softplus(x: W): W {
  return tf.tidy(() => tf.where(tf.greater(x, 20), x, tf.log1p(tf.exp(tf.minimum(x, 20)))));
}

/** Causal depthwise conv1d over tokens (left zero padding K−1), then SiLU. */
function causalConvSilu(x: W, lw: TfLayer, kernels: ScanKernels): W {
  if (kernels.convSilu) return kernels.convSilu(x as tf.Tensor2D, lw.convW as tf.Tensor2D, lw.convB as tf.Tensor1D | undefined);
  return depthwiseConvSilu(x, lw.convFilter as W, lw.convB);
}

function depthwiseConvSilu(x: W, filter: W, bias?: W): W {
  return tf.tidy(() => {
    const [L, C] = x.shape;
    const K = filter.shape[0];
    const padded = tf.pad(tf.reshape(x, [1, L, 1, C]) as tf.Tensor4D, [[0, 0], [K - 1, 0], [0, 0], [0, 0]]);
    const conv = tf.reshape(tf.depthwiseConv2d(padded, filter as tf.Tensor4D, 1, 'valid'), [L, C]);
    return silu(bias ? tf.add(conv, bias) : conv);
  });
}

function cols(x: W, start: number, width: number): W {
  return tf.slice(x, [0, start], [x.shape[0], width]);
}

// --- forward --------------------------------------------------------------------------------------

/** Tensors of one layer, kept on the device until downloaded. */
type Captured = Partial<Record<InternalName, W>>;

export async function tfjsForward(model: TfModel, ids: ArrayLike<number>, options: ForwardOptions = {}): Promise<ForwardResult<Float32Array>> {
  const c = model.config;
  if (c.arch === 'seed') throw new Error('the simplified block takes a hidden-state input, not token ids: use tfjsSeedBlock');
  const vocab = c.vocabSize;
  for (let i = 0; i < ids.length; i++) {
    if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= vocab) throw new RangeError(`token id ${ids[i]} at position ${i} is outside the ${vocab}-token vocabulary`);
  }
  const at = resolvePositions(options.statesAt ?? [], ids.length);
  const kernels = scanKernelsFor(tf.getBackend());
  const idTensor = tf.tensor1d(Int32Array.from(ids), 'int32');
  let hidden = tf.gather(model.embedding as W, idTensor);
  idTensor.dispose();
  const layers: LayerInternals<Float32Array>[] = [];
  try {
    for (let i = 0; i < model.layers.length; i++) {
      options.checkCancelled?.();
      const keepAll = wantsLayer(options, i);
      const lw = model.layers[i];
      const captured: Captured = tf.tidy(() => {
        const proj = linear(rmsNorm(hidden, lw.norm as W, c.eps), lw.inProjW, model.layout, lw.inProjB);
        const t = c.arch === 'mamba1' ? mamba1Mixer(c.dInner, c.dState, c.dtRank, lw, model.layout, proj, at, kernels) : mamba2Mixer(c, lw, model.layout, proj, at, kernels);
        const hiddenOut = tf.add(hidden, t.out as W);
        return keepAll ? { hidden_in: hidden, ...t, hidden_out: hiddenOut } : { hidden_out: hiddenOut };
      });
      const next = captured.hidden_out as W;
      if (keepAll) layers.push({ layer: i, tensors: await download(captured, options.keep), hTokens: captured.h ? at : undefined });
      else hidden.dispose();
      hidden = next;
      await tf.nextFrame(); // lets the webview paint between layers
    }
    const normed = tf.tidy(() => rmsNorm(hidden, model.normF as W, c.eps));
    try {
      if (options.predictions) return { predictions: await devicePredictions(normed, model.lmHead as W, model.layout, ids, options.predictions), layers };
      // lm_head stays [V, H] (tied to the embedding, which gather needs in that layout).
      const logits = headLogits(normed, model.lmHead as W, model.layout);
      const data = (await logits.data()) as Float32Array;
      logits.dispose();
      return { logits: { shape: [ids.length, vocab], data }, layers };
    } finally {
      normed.dispose();
    }
  } finally {
    hidden.dispose();
  }
}

async function download<K extends string>(captured: Partial<Record<K, W>>, keep?: readonly string[]): Promise<Partial<Record<K, Tensor<Float32Array>>>> {
  const out: Partial<Record<K, Tensor<Float32Array>>> = {};
  for (const [name, t] of Object.entries(captured) as [K, W][]) {
    if (!keep || keep.includes(name)) out[name] = { shape: t.shape, data: (await t.data()) as Float32Array };
    // hidden_out stays on the device as the next layer's input; the others are freed here.
    if (name !== 'hidden_out') t.dispose();
  }
  return out;
}

/**
 * Size of one [rows, V] block of logits in the predictions: bounds their temporaries (about three
 * blocks' worth), which on the wasm and cpu backends sit in the webview's own memory.
 */
const PREDICTION_BLOCK_BYTES = 8e6;

/**
 * Top-k and the following token's probability and rank per position, on the device, one block of
 * rows at a time; the small per-block results stay there and come down in four reads at the end.
 */
export async function devicePredictions(normed: W, lmHead: W, layout: WeightLayout, ids: ArrayLike<number>, k: number, blockBytes = PREDICTION_BLOCK_BYTES): Promise<Predictions> {
  const L = ids.length;
  const V = lmHead.shape[0];
  const blockRows = Math.max(1, Math.floor(blockBytes / (4 * V)));
  type Block = { ids: W; probs: W; nextProb: W; nextRank: W };
  const blocks: Block[] = [];
  let joined: Block | undefined;
  try {
    for (let start = 0; start < L; start += blockRows) {
      const rows = Math.min(blockRows, L - start);
      // (row, token that follows it): the last position has none, id 0 stands in and is not reported.
      const pairs = new Int32Array(2 * rows);
      for (let r = 0; r < rows; r++) {
        pairs[2 * r] = r;
        pairs[2 * r + 1] = start + r + 1 < L ? ids[start + r + 1] : 0;
      }
      blocks.push(tf.tidy(() => {
        const logits = headLogits(tf.slice(normed, start, rows), lmHead, layout);
        const probs = tf.softmax(logits);
        const top = tf.topk(probs, k);
        const at = tf.tensor2d(pairs, [rows, 2], 'int32');
        const nextLogit = tf.gatherND(logits, at);
        return {
          ids: top.indices,
          probs: top.values,
          nextProb: tf.gatherND(probs, at),
          nextRank: tf.sum(tf.cast(tf.greater(logits, tf.expandDims(nextLogit, 1)), 'int32'), 1),
        };
      }));
    }
    joined = tf.tidy(() => ({
      ids: tf.concat(blocks.map((b) => b.ids)),
      probs: tf.concat(blocks.map((b) => b.probs)),
      nextProb: tf.concat(blocks.map((b) => b.nextProb)),
      nextRank: tf.concat(blocks.map((b) => b.nextRank)),
    }));
    const [topIds, topProbs, nextProb, nextRank] = await Promise.all([joined.ids.data(), joined.probs.data(), joined.nextProb.data(), joined.nextRank.data()]);
    const out: Predictions = { k, ids: topIds as Int32Array, probs: topProbs as Float32Array, nextProb: nextProb as Float32Array, nextRank: nextRank as Int32Array };
    out.nextProb[L - 1] = NaN;
    out.nextRank[L - 1] = -1;
    return out;
  } finally {
    for (const b of [...blocks, ...(joined ? [joined] : [])]) Object.values(b).forEach((t) => t.dispose());
  }
}

/**
 * The mixers dispose each [L, D] intermediate as soon as it is used (proj, x, the gated output),
 * not at the end of the layer's tidy: a smaller peak per layer, and less wasm heap for good.
 */
function mamba1Mixer(Dd: number, N: number, R: number, lw: TfLayer, layout: WeightLayout, proj: W, at: Int32Array, kernels: ScanKernels): Captured {
  const z = cols(proj, Dd, Dd);
  const x = cols(proj, 0, Dd);
  proj.dispose();
  const u = causalConvSilu(x, lw, kernels);
  x.dispose();
  const xdbl = linear(u, lw.xProjW as W, layout);
  const B = cols(xdbl, R, N);
  const C = cols(xdbl, R + N, N);
  const delta = softplus(linear(cols(xdbl, 0, R), lw.dtProjW as W, layout, lw.dtProjB));
  const s = kernels.scan({ u: u as tf.Tensor2D, delta: delta as tf.Tensor2D, A: lw.A as tf.Tensor2D, B: B as tf.Tensor2D, C: C as tf.Tensor2D, D: lw.D as tf.Tensor1D, z: z as tf.Tensor2D, statesAt: at });
  const out = linear(s.gated as W, lw.outProjW as W, layout, lw.outProjB);
  s.gated?.dispose();
  return { z, u, delta, B, C, y: s.y, out, ...(s.h ? { h: s.h } : {}) };
}

function mamba2Mixer(c: Extract<ModelConfig, { arch: 'mamba2' }>, lw: TfLayer, layout: WeightLayout, proj: W, at: Int32Array, kernels: ScanKernels): Captured {
  const Din = c.dInner, GN = c.nGroups * c.dState, convDim = mamba2ConvDim(c);
  const z = cols(proj, 0, Din);
  const xBC = causalConvSilu(cols(proj, Din, convDim), lw, kernels);
  const u = cols(xBC, 0, Din);
  const B = cols(xBC, Din, GN);
  const C = cols(xBC, Din + GN, GN);
  const [lo, hi] = c.timeStepLimit;
  const delta = tf.clipByValue(softplus(tf.add(cols(proj, Din + convDim, c.nHeads), lw.dtBias as W)), lo, Number.isFinite(hi) ? hi : 3.4e38);
  const s = kernels.headScan({ x: u as tf.Tensor2D, delta: delta as tf.Tensor2D, A: lw.A as tf.Tensor1D, B: B as tf.Tensor2D, C: C as tf.Tensor2D, D: lw.D as tf.Tensor1D, groups: c.nGroups, statesAt: at });
  const normed = rmsNorm(tf.mul(s.y, silu(z)), lw.gatedNorm as W, c.eps, c.nGroups);
  const out = linear(normed, lw.outProjW as W, layout, lw.outProjB);
  return { z, u, delta, B, C, y: s.y, out, ...(s.h ? { h: s.h } : {}) };
}

export interface TfSeedBlockResult {
  readonly x_in: Tensor<Float32Array>;
  readonly res: Tensor<Float32Array>;
  readonly B: Tensor<Float32Array>;
  readonly C: Tensor<Float32Array>;
  readonly delta: Tensor<Float32Array>;
  readonly y: Tensor<Float32Array>;
  readonly out: Tensor<Float32Array>;
}

/** The simplified block on tfjs; same outputs as referenceSeedBlock. */
export async function tfjsSeedBlock(model: TfModel, x: Tensor<Float32Array>): Promise<TfSeedBlockResult> {
  const c = model.config;
  if (c.arch !== 'seed') throw new Error('tfjsSeedBlock needs the simplified block');
  const D = c.dModel, N = c.dState;
  const lw = model.layers[0];
  const kernels = scanKernelsFor(tf.getBackend());
  const t = tf.tidy(() => {
    const proj = linear(tf.tensor(x.data, [...x.shape]), lw.inProjW, model.layout, lw.inProjB);
    const xIn = cols(proj, 0, D);
    const res = cols(proj, D, D);
    const params = linear(xIn, lw.xProjW as W, model.layout, lw.xProjB);
    const B = cols(params, 0, N);
    const C = cols(params, N, N);
    const delta = softplus(linear(cols(params, 2 * N, 1), lw.dtProjW as W, model.layout, lw.dtProjB));
    const s = kernels.scan({ u: xIn as tf.Tensor2D, delta: delta as tf.Tensor2D, A: lw.A as tf.Tensor2D, B: B as tf.Tensor2D, C: C as tf.Tensor2D, D: lw.D as tf.Tensor1D, z: res as tf.Tensor2D, statesAt: new Int32Array() });
    return { x_in: xIn, res, B, C, delta, y: s.y, out: s.gated as W };
  });
  return (await download(t)) as TfSeedBlockResult;
}
