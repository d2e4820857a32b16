/**
 * TensorFlow.js building blocks shared by the layer kinds' tfjs forwards, and the uploader that
 * puts a kind's weights on the backend. The float64 reference (../reference/ops.ts) is the oracle
 * each of them is tested against.
 *
 * Each building block frees its own temporaries (an inner tf.tidy) instead of leaving them to the
 * layer's tidy: on the wasm and cpu backends they live in the webview's memory, and the wasm heap
 * never shrinks, so a layer's peak of temporaries stays in the panel for good.
 */
import * as tf from '@tensorflow/tfjs-core';
import { scaledDelta as scaledDeltaF64, type LayerEdit, type StatePatch } from '../interventions';
import type { Param } from '../model/params';
import type { ScanKernels } from './scan';

export type W = tf.Tensor;

/**
 * How the projection weights are stored and multiplied. 'in-out': transposed once at upload
 * ([in, out]), multiplied as x · wᵀ with no transposed operand (35 % faster on tfjs-webgpu when
 * the panel still ran it; webgl and cpu take it too).
 * 'out-in': torch's [out, in], multiplied as (w · xᵀ)ᵀ: on wasm a weight in the second operand is
 * packed by XNNPACK into a cached copy, which doubles the weights in the wasm heap (+490 MiB at
 * mamba-130m); as the first operand it is not, for 9 % more time per projection.
 */
export type WeightLayout = 'in-out' | 'out-in';

export function layoutFor(backend: string): WeightLayout {
  return backend === 'wasm' ? 'out-in' : 'in-out';
}

/** Puts parameters on the current backend; every tensor it makes is freed by `dispose`. */
export class TfUploader {
  private readonly owned: W[] = [];

  constructor(readonly layout: WeightLayout) {}

  tensor(p: Param<'float32'>): W {
    return this.own(tf.tensor(p.data, [...p.shape], 'float32'));
  }

  optional(p: Param<'float32'> | undefined): W | undefined {
    return p ? this.tensor(p) : undefined;
  }

  /** A projection weight [out, in], stored in the uploader's layout (see `linear`). */
  projection(p: Param<'float32'>): W {
    if (this.layout === 'out-in') return this.tensor(p);
    return this.own(tf.tidy(() => tf.transpose(tf.tensor(p.data, [...p.shape] as [number, number]))));
  }

  /** A = −exp(A_log), computed once. */
  negExp(p: Param<'float32'>): W {
    return this.own(tf.tidy(() => tf.neg(tf.exp(tf.tensor(p.data, [...p.shape])))));
  }

  /** A conv1d weight [C, K] (+ bias), also as tf.depthwiseConv2d's filter [K, 1, C, 1]. */
  conv(weight: Param<'float32'>, bias: Param<'float32'> | undefined): TfConv {
    const [C, K] = weight.shape;
    const convFilter = this.own(tf.tidy(() => tf.reshape(tf.transpose(tf.tensor(weight.data, [C, K])), [K, 1, C, 1])));
    return { convW: this.tensor(weight), convFilter, convB: this.optional(bias) };
  }

  dispose(): void {
    this.owned.forEach((t) => t.dispose());
  }

  private own(t: W): W {
    this.owned.push(t);
    return t;
  }
}

/** torch.nn.Linear with its weight stored in `layout`: x [L, in] · wT [in, out] (+ b). */
export function linear(x: W, w: W, layout: WeightLayout, b?: W): W {
  return tf.tidy(() => {
    const y = layout === 'in-out' ? tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D) : tf.transpose(tf.matMul(w as tf.Tensor2D, tf.transpose(x) as tf.Tensor2D));
    return b ? tf.add(y, b) : y;
  });
}

/** RMSNorm over `groups` equal column groups; without `weight`, the weightless norm (FalconMamba's dt, B, C). */
export function rmsNorm(x: W, weight: W | undefined, eps: number, groups = 1): W {
  return tf.tidy(() => {
    const [L, H] = x.shape;
    const g = tf.reshape(x, [L, groups, H / groups]);
    const normed = tf.mul(g, tf.rsqrt(tf.add(tf.mean(tf.square(g), -1, true), eps)));
    const flat = tf.reshape(normed, [L, H]);
    return weight ? tf.mul(flat, weight) : flat;
  });
}

/** x · s (x itself when s is 1): the hybrid families' µP multipliers. */
export function scaled(x: W, s: number): W {
  return s === 1 ? x : tf.mul(x, s);
}

export function silu(x: W): W {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** torch softplus (threshold 20): x above 20 passes through, avoiding exp overflow. */
export function softplus(x: W): W {
  return tf.tidy(() => tf.where(tf.greater(x, 20), x, tf.log1p(tf.exp(tf.minimum(x, 20)))));
}

/**
 * Δ [L, columns] times the edit's scale-delta factors (Δ itself without any). The factors are the
 * reference's scaledDelta of ones: one definition of which cells a scaling reaches.
 */
export function scaledDelta(delta: W, edit?: LayerEdit): W {
  if (!edit?.deltaScale) return delta;
  const [L, columns] = delta.shape;
  const factors = scaledDeltaF64({ shape: [L, columns], data: new Float64Array(L * columns).fill(1) }, edit).data;
  return tf.tidy(() => tf.mul(delta, tf.tensor2d(Float32Array.from(factors), [L, columns])));
}

/** A causal conv1d's weights on the backend, as fields of a layer's weights: [C, K], and as the depthwise filter [K, 1, C, 1]. */
export interface TfConv {
  readonly convW: W;
  readonly convFilter: W;
  readonly convB?: W;
}

/**
 * Causal depthwise conv1d over tokens (left zero padding K−1), then SiLU: the backend's fused
 * kernel when it has one. With a patch-state, positions token + 1 … token + K − 1 read the
 * patch's context (another run's inputs up to its token) where they would read x's: those rows are
 * the conv of [context; x after the token], the others are x's own.
 */
export function causalConvSilu(x: W, conv: TfConv, kernels: ScanKernels, patch?: Pick<StatePatch, 'token' | 'conv'>): W {
  const plain = convSilu(x, conv, kernels);
  const [L, C] = x.shape;
  const [, K] = conv.convW.shape;
  const [from, to] = patch ? [patch.token + 1, Math.min(L, patch.token + K)] : [0, 0];
  if (!patch || from >= to) return plain;
  const patched = tf.tidy(() => {
    const context = tf.tensor2d(Float32Array.from(patch.conv), [K - 1, C]);
    const window = convSilu(tf.concat([context, tf.slice(x, from, to - from)]), conv, kernels);
    return tf.concat([tf.slice(plain, 0, from), tf.slice(window, K - 1), tf.slice(plain, to)]);
  });
  plain.dispose();
  return patched;
}

/**
 * The conv's context after each position t in `at`, [T, K − 1, C]: the K − 1 inputs ending at t,
 * oldest first, as position t + 1 reads them (zeros before the start; a patch's rows where they
 * stand in). With the states h, what a patch-state from this run reads (the reference's convWindows).
 */
export function convWindows(x: W, K: number, at: Int32Array, patch?: Pick<StatePatch, 'token' | 'conv'>): W {
  const [L, C] = x.shape;
  // Rows of [zeros (K − 1); x; the patch's context]: position p is row K − 1 + p, the patch's row r is K − 1 + L + r.
  const rows = new Int32Array(at.length * (K - 1));
  at.forEach((t, i) => {
    for (let r = 0; r < K - 1; r++) {
      const src = t - K + 2 + r;
      const patched = patch !== undefined && t >= patch.token && src > patch.token - K + 1 && src <= patch.token;
      rows[i * (K - 1) + r] = patched ? K - 1 + L + (src - patch.token + K - 2) : K - 1 + src;
    }
  });
  return tf.tidy(() => {
    const sources = [tf.zeros([K - 1, C]), x, ...(patch ? [tf.tensor2d(Float32Array.from(patch.conv), [K - 1, C])] : [])];
    return tf.reshape(tf.gather(tf.concat(sources), tf.tensor1d(rows, 'int32')), [at.length, K - 1, C]);
  });
}

function convSilu(x: W, conv: TfConv, kernels: ScanKernels): W {
  if (kernels.convSilu) return kernels.convSilu(x as tf.Tensor2D, conv.convW as tf.Tensor2D, conv.convB as tf.Tensor1D | undefined);
  return depthwiseConvSilu(x, conv.convFilter, conv.convB);
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

/** Columns [start, start + width) of a [L, C] tensor. */
export function cols(x: W, start: number, width: number): W {
  return tf.slice(x, [0, start], [x.shape[0], width]);
}
