/**
 * A model's parameters on a GPUDevice, as f32 storage buffers, uploaded once and shared by every
 * plan (sequence length) of the model. Each layer's kind uploads its own weights through its
 * `webgpu` entry (layers/<kind>/webgpu.ts); the backbone (embedding, final norm, lm_head) is here.
 * Projections keep torch's [out, in] layout (matmul.ts reads W[n·K + k]), so a tied lm_head is
 * the embedding buffer itself.
 */
import { InputError } from '../errors';
import { backboneScales, isLanguageModelConfig, type LanguageModelConfig } from '../model/config';
import type { LoadedModel } from '../model/graph';
import type { StreamedModel } from '../model/load';
import type { GpuUploader, LayerBuild, LayerContext, LayerIo } from './layer';
import { packHalves, type WeightFormat } from './weightFormat';

/** One layer on the device: its kind's weights, bound to the kind's builder. */
export interface GpuLayer {
  readonly index: number;
  /** It reads the embedding output (Zamba2's shared block): the plan keeps it apart from the stream. */
  readonly readsEmbeddings: boolean;
  /** A run from a token c on continues from its CarryIn alone (WebGpuEntry.stateCarried). */
  readonly stateCarried: boolean;
  build(io: LayerIo, ctx: LayerContext): LayerBuild;
}

/** Refuses, in one line, a model with a layer that does not continue from its carries alone (attention): a run in chunks needs one of Mamba layers. */
export function requireStateCarried(weights: GpuWeights): void {
  const attends = weights.layers.find((l) => !l.stateCarried);
  if (attends) throw new InputError(`layer ${attends.index}`, 'attends to the tokens before it, which a carried state does not hold: a run in chunks needs a model of Mamba layers');
}

export interface GpuWeights {
  readonly device: GPUDevice;
  readonly config: LanguageModelConfig;
  readonly embedding: GPUBuffer;
  /** The embedding output is multiplied by this (a hybrid's µP embedding multiplier; 1 elsewhere). */
  readonly embeddingScale: number;
  readonly layers: readonly GpuLayer[];
  /** The final norm's weight, times the logits multiplier of the family (so lm_head's output is the logits). */
  readonly normF: GPUBuffer;
  /** The embedding buffer when tied. */
  readonly lmHead: GPUBuffer;
  /** How the projections and the embedding are stored (weightFormat.ts). */
  readonly format: WeightFormat;
  /** Bytes on the device. */
  readonly bytes: number;
  destroy(): void;
}

/**
 * Every weight of `model` on the device. A streamed model (model/load.ts: openModel) is read a
 * layer at a time as it uploads, so the host holds one layer while the device ends up with all.
 */
export async function uploadWeights(device: GPUDevice, model: LoadedModel<'float32'> | StreamedModel<'float32'>, format: WeightFormat = 'f32'): Promise<GpuWeights> {
  const { config, embedding: embeddingParam, normF: normParam, lmHead: headParam } = model;
  if (!embeddingParam || !normParam || !headParam || !isLanguageModelConfig(config)) {
    throw new Error('the native WebGPU forward runs language models (token ids in, logits out), not the simplified block');
  }
  const owned: GPUBuffer[] = [];
  let bytes = 0;
  const upload = (label: string, data: ArrayLike<number>, Words: Float32ArrayConstructor | Uint32ArrayConstructor = Float32Array): GPUBuffer => {
    const buffer = device.createBuffer({ label, size: 4 * Math.max(1, data.length), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    new Words(buffer.getMappedRange()).set(data);
    buffer.unmap();
    owned.push(buffer);
    bytes += buffer.size;
    return buffer;
  };
  const destroy = () => owned.forEach((b) => b.destroy());
  const weight = (label: string, data: ArrayLike<number>) => (format === 'f32' ? upload(label, data) : upload(label, packHalves(data, format), Uint32Array));
  const uploader = (prefix: string): GpuUploader => ({
    upload: (label, data) => upload(`${prefix} ${label}`, data),
    projection: (label, data) => weight(`${prefix} ${label}`, data),
    optional: (label, p) => (p ? upload(`${prefix} ${label}`, p.data) : undefined),
    scanParams: (label, aLog, D) => {
      const packed = new Float32Array(aLog.data.length + D.data.length);
      aLog.data.forEach((v, i) => (packed[i] = -Math.exp(v)));
      packed.set(D.data, aLog.data.length);
      return upload(`${prefix} ${label}`, packed);
    },
  });
  try {
    const embedding = weight('embedding', embeddingParam.data);
    // logits = lm_head(norm_f(x)) · s = lm_head((s · weight) ⊙ x̂): the multiplier folds into the norm's weight, rounded once.
    const scales = backboneScales(config);
    const normF = upload('norm_f', scales.logits === 1 ? normParam.data : normParam.data.map((v) => v * scales.logits));
    const lmHead = headParam === embeddingParam ? embedding : weight('lm_head', headParam.data);
    const layers: GpuLayer[] = [];
    const count = 'layers' in model ? model.layers.length : model.layerCount;
    for (let i = 0; i < count; i++) {
      const layer = 'layers' in model ? model.layers[i] : await model.layer(i);
      layers.push(layer.open((kind, layerConfig, params) => {
        const entry = kind.webgpu;
        if (!entry) throw new Error(`the native WebGPU forward has no ${kind.label} layers yet (layer ${layer.index})`);
        const weights = entry.upload(layerConfig, params, uploader(`layer ${layer.index}`));
        return { index: layer.index, readsEmbeddings: entry.readsEmbeddings?.(layerConfig) ?? false, stateCarried: entry.stateCarried?.(layerConfig) ?? false, build: (io, ctx) => entry.build(layerConfig, weights, io, ctx) };
      }));
    }
    return { device, config, embedding, embeddingScale: scales.embedding, layers, normF, lmHead, format, bytes, destroy };
  } catch (e) {
    destroy();
    throw e;
  }
}
