/**
 * The contract of a layer kind. A model is a list of layers, each of a kind (Mamba-1 mixer,
 * Mamba-2 mixer, the design note's simplified block); a kind declares everything the rest of the
 * engine needs to know about it — its parameters and their checkpoint names, the internals it
 * records, the scan parameters the analyses read — and its forward on each engine. The loaders,
 * the forwards, keptValues and the views read these descriptions instead of switching on the
 * architecture, so a new kind is one folder under layers/ and one line in layers/index.ts.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { ForwardResult, InternalName } from '../internals';
import type { LayerEdit } from '../interventions';
import { InputError } from '../errors';
import type { ModelConfig } from '../model/config';
import type { HybridLayerConfig } from './hybrid/config';
import type { Param, ParamReader, Precision } from '../model/params';
import type { F64 } from '../reference/ops';
import type { TfUploader, WeightLayout } from '../tfjs/ops';
import type { ScanKernels } from '../tfjs/scan';
import type { WebGpuEntry } from '../webgpu/layer';

/** One parameter of a layer: its checkpoint name after the layer's prefix (`backbone.layers.3.`) and its shape. */
export interface ParamSpec<C> {
  readonly key: string;
  readonly shape: (c: C) => readonly number[];
  /** The shape it is used in, when that differs from the stored one (conv1d's [D, 1, K] → [D, K]). */
  readonly as?: (c: C) => readonly number[];
  /** Present only when this holds (the biases config.json switches on); absent otherwise. */
  readonly when?: (c: C) => boolean;
}

export type ParamSpecs<C> = Readonly<Record<string, ParamSpec<C>>>;

/** The loaded parameters of one layer, named as in its specs; those with `when` may be absent. */
export type ParamsOf<S, P extends Precision> = {
  readonly [K in keyof S]: S[K] extends { readonly when: unknown } ? Param<P> | undefined : Param<P>;
};

/** Per-token shape of each internal a layer records (for h and conv_state: per captured state). */
export type InternalShapes = Readonly<Partial<Record<InternalName, readonly number[]>>>;

/**
 * A layer's selective scan as the analyses see it (retention, rescan, implicit attention, the
 * state view): A_log with D, and the widths of the scan's inputs in a dump.
 */
export interface ScanView<P extends Precision> {
  /** A = −exp(A_log): [channels, N] per channel, or [heads] per head. */
  readonly aLog: Param<P>;
  readonly D: Param<P>;
  /** B/C groups (1 unless the kind groups heads). */
  readonly groups: number;
  /** Width of u and y. */
  readonly channels: number;
  /** Width of Δ, and what one column of it is. */
  readonly deltaWidth: number;
  readonly deltaUnit: 'channels' | 'heads';
  /** Width of B and C: groups · N. */
  readonly stateWidth: number;
  /** The chunk length the checkpoint's own kernels scan in, when it has one. */
  readonly chunkSize?: number;
}

/** What a layer's forward returns on an engine whose tensors are T (a type, not an interface: tf.tidy can return it). */
export type LayerStep<T> = {
  /** The stream leaving the layer: the next layer's input. */
  readonly next: T;
  /** The internals it records, as declared by the kind's `internals`. */
  readonly internals: Partial<Record<InternalName, T>>;
};

/**
 * What a layer carries from one chunk of a sequence to the next: its scan state after the chunk's
 * last token, and the conv's last K − 1 inputs (none for a kind without a conv). A sequence run in
 * chunks with it carried is the same run as in one pass.
 */
export interface LayerCarry {
  readonly h: Float64Array;
  readonly conv?: F64;
}

/** Each layer's carry from a forward that kept h and conv_state at one position (statesAt: one token), on any engine. */
export function carriesOf(run: ForwardResult<Float32Array>): LayerCarry[] {
  return run.layers.map(({ layer, tensors: { h, conv_state } }): LayerCarry => {
    if (!h) throw new InputError(`layer ${layer}`, 'has no scan state to carry from one chunk to the next: a long run needs every layer to be a Mamba layer');
    return { h: Float64Array.from(h.data), ...(conv_state ? { conv: { shape: conv_state.shape.slice(1), data: Float64Array.from(conv_state.data) } } : {}) };
  });
}

/** What a layer may read of the whole forward besides its input: the embedding output (Zamba2's shared block concatenates it). */
export interface ReferenceRun {
  readonly embeddings: F64;
  /** Attention layers record their pattern (ForwardOptions.attentionPattern). */
  readonly attentionPattern?: boolean;
}

/** The float64 layer step: its output, internals and the carry for the next chunk. */
export type ReferenceStep = LayerStep<F64> & { readonly carry: LayerCarry };

/** A layer's weights on the tfjs backend. */
export type TfWeights = Readonly<Record<string, tf.Tensor | undefined>>;

/** What a tfjs forward shares with every layer it runs. */
export interface TfRun {
  readonly layout: WeightLayout;
  readonly kernels: ScanKernels;
  /** Sorted token positions whose states are captured. */
  readonly at: Int32Array;
  /** The embedding output (Zamba2's shared block reads it); absent for the simplified block. */
  readonly embeddings?: tf.Tensor;
  /** Attention layers record their pattern (ForwardOptions.attentionPattern). */
  readonly attentionPattern?: boolean;
}

export interface TfjsEntry<C, S, T extends TfWeights> {
  upload(c: C, p: ParamsOf<S, 'float32'>, up: TfUploader): T;
  /** Weights stored in the model's WeightLayout, by name or by a test of name and tensor: a backend switch that changes the layout transposes them. */
  readonly projections: readonly (keyof T & string)[] | ((name: string, t: tf.Tensor) => boolean);
  /**
   * Runs inside the walker's tf.tidy; frees its large intermediates as soon as it can. `edit`: the
   * interventions on this layer, applied as the reference applies them.
   */
  forward(c: C, w: T, x: tf.Tensor, run: TfRun, edit?: LayerEdit): LayerStep<tf.Tensor>;
}

/**
 * A kind: C its config, S its parameter specs, T its weights on tfjs, G its weights on WebGPU.
 * A kind without a `webgpu` entry runs on the reference and tfjs engines only.
 */
/** What a layer kind is bound to: a model's config, or one layer's of a hybrid model (each layer its own composition). */
export type LayerConfig = ModelConfig | HybridLayerConfig;

export interface LayerKind<C extends LayerConfig, S extends ParamSpecs<C>, T extends TfWeights, G = unknown> {
  /** Names the kind in messages ("config (mamba1) implies …"). */
  readonly id: string;
  /** For people: "Mamba-1 mixer". */
  readonly label: string;
  /** What one layer of the kind is, when its config says more than `label` ("attention + MoE"). */
  describe?(c: C): string;
  /** Whether config.json describes layers of this kind. */
  accepts(config: LayerConfig): config is C;
  /** Its parameters: the same for every layer of the kind, or (a hybrid layer) what the layer's config composes. */
  readonly params: S | ((c: C) => S);
  internals(c: C): InternalShapes;
  /** The layer's selective scan; none for a layer without one (a hybrid's attention or MLP block). */
  scanView<P extends Precision>(c: C, p: ParamsOf<S, P>): ScanView<P> | undefined;
  /**
   * The float64 forward on the stream entering the layer: the oracle the other engines are tested
   * against. `carry`: the layer's state after the previous chunk of the sequence (none: its start).
   * `edit`: the interventions on this layer (../interventions.ts), on Δ and in the scan.
   */
  reference(c: C, p: ParamsOf<S, 'float64'>, x: F64, at: Int32Array, carry?: LayerCarry, edit?: LayerEdit, run?: ReferenceRun): ReferenceStep;
  readonly tfjs: TfjsEntry<C, S, T>;
  readonly webgpu?: WebGpuEntry<C, ParamsOf<S, 'float32'>, G>;
}

/** Any kind, its own types hidden: what `open` hands a caller, to use with the kind's types intact. */
export type OpenLayer<P extends Precision, R> = <C extends LayerConfig, S extends ParamSpecs<C>, T extends TfWeights, G>(kind: LayerKind<C, S, T, G>, config: C, params: ParamsOf<S, P>) => R;

/** One layer of a loaded model: its kind bound to the model's config and to the layer's parameters. */
export interface ModelLayer<P extends Precision> {
  readonly index: number;
  readonly kind: ConfiguredKind;
  /** Values in its parameters (what a forward multiplies each token by, about once each). */
  readonly parameters: number;
  scanView(): ScanView<P> | undefined;
  /** Calls `use` with the layer's kind, config and parameters, their types matched: how the forwards reach a kind's engine entries. */
  open<R>(use: OpenLayer<P, R>): R;
}

/** The layer's selective scan, for the analyses that read one: an error naming the layer when it has none. */
export function scanOf<P extends Precision>(layer: ModelLayer<P>): ScanView<P> {
  const view = layer.scanView();
  if (!view) throw new InputError(`layer ${layer.index}`, `is a ${layer.kind.label} without a selective scan: choose a Mamba layer`);
  return view;
}

/**
 * The layer's config and parameters, with `kind`'s types, when it is a layer of that kind: for
 * code written for one kind (its tests; an engine that has no entry in every kind yet).
 */
export function asKind<C extends LayerConfig, S extends ParamSpecs<C>, T extends TfWeights, G, P extends Precision>(
  layer: ModelLayer<P>,
  kind: LayerKind<C, S, T, G>,
): { readonly config: C; readonly params: ParamsOf<S, P> } | undefined {
  return layer.open((k, config, params) =>
    // The same kind object declared these parameters and accepted this config: its types are theirs.
    (k as unknown) === kind ? ({ config, params } as unknown as { config: C; params: ParamsOf<S, P> }) : undefined,
  );
}

/** A kind bound to a model's config: its descriptions, and the loader of its layers. */
export interface ConfiguredKind {
  readonly id: string;
  readonly label: string;
  readonly internals: InternalShapes;
  /** Values a layer's parameters hold (those the config switches on), before any is read: for memory estimates. */
  readonly parameterValues: number;
  load<P extends Precision>(reader: ParamReader<P>, prefix: string, index: number): Promise<ModelLayer<P>>;
}

export function configure<C extends LayerConfig, S extends ParamSpecs<C>, T extends TfWeights, G>(kind: LayerKind<C, S, T, G>, config: C): ConfiguredKind {
  const specs = typeof kind.params === 'function' ? kind.params(config) : kind.params;
  const configured: ConfiguredKind = {
    id: kind.id,
    label: kind.describe?.(config) ?? kind.label,
    internals: kind.internals(config),
    parameterValues: Object.values<ParamSpec<C>>(specs).reduce((sum, spec) => (spec.when && !spec.when(config) ? sum : sum + spec.shape(config).reduce((a, b) => a * b, 1)), 0),
    async load<P extends Precision>(reader: ParamReader<P>, prefix: string, index: number): Promise<ModelLayer<P>> {
      const params = await readParams(reader, specs, config, prefix);
      const parameters = Object.values<Param<P> | undefined>(params).reduce((sum, p) => sum + (p?.data.length ?? 0), 0);
      return { index, kind: configured, parameters, scanView: () => kind.scanView(config, params), open: (use) => use(kind, config, params) };
    },
  };
  return configured;
}

/** Reads the parameters `specs` declare, in their order, each checked against the shape the config implies. */
async function readParams<C, S extends ParamSpecs<C>, P extends Precision>(reader: ParamReader<P>, specs: S, config: C, prefix: string): Promise<ParamsOf<S, P>> {
  const params: Record<string, Param<P> | undefined> = {};
  for (const [name, spec] of Object.entries(specs)) {
    params[name] = spec.when && !spec.when(config) ? undefined : await reader.get(prefix + spec.key, spec.shape(config), spec.as?.(config));
  }
  // The loop filled one entry per spec, each as ParamsOf says; TypeScript cannot follow Object.entries.
  return params as ParamsOf<S, P>;
}

/** Values a run keeps per layer of a kind: each kept internal's per-token shape, times the tokens (states for h and conv_state). */
export function keptPerLayer(shapes: InternalShapes, tokens: number, states: number, keep: readonly InternalName[]): number {
  return keep.reduce((sum, name) => {
    const shape = shapes[name];
    return shape ? sum + (name === 'h' || name === 'conv_state' ? states : tokens) * shape.reduce((a, b) => a * b, 1) : sum;
  }, 0);
}
