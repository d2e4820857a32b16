/**
 * A model's parameters on a GPUDevice, as f32 storage buffers, uploaded once and shared by every
 * plan (sequence length) of the model. Projections keep torch's [out, in] layout (matmul.ts reads
 * W[n·K + k]), so a tied lm_head is the embedding buffer itself. The scan's [A | D] pack is built
 * here: A = −exp(A_log) in float64, then rounded once.
 */
import { asKind, type ModelLayer } from '../layers/kind';
import { mamba1 } from '../layers/mamba1';
import { mamba2 } from '../layers/mamba2';
import type { LanguageModelConfig } from '../model/config';
import { isLanguageModel, type LoadedModel } from '../model/graph';
import type { Param } from '../model/params';
import type { Mamba1LayerParams } from '../layers/mamba1/params';
import type { Mamba2LayerParams } from '../layers/mamba2/params';

export interface GpuLayerWeights {
  readonly norm: GPUBuffer;
  readonly inProjW: GPUBuffer;
  readonly inProjB?: GPUBuffer;
  readonly convW: GPUBuffer;
  readonly convB?: GPUBuffer;
  /** [A | D] for the scan generator. */
  readonly scanParams: GPUBuffer;
  readonly outProjW: GPUBuffer;
  readonly outProjB?: GPUBuffer;
  // Mamba-1
  readonly xProjW?: GPUBuffer;
  readonly dtProjW?: GPUBuffer;
  readonly dtProjB?: GPUBuffer;
  // Mamba-2
  readonly dtBias?: GPUBuffer;
  readonly gatedNorm?: GPUBuffer;
}

export interface GpuWeights {
  readonly device: GPUDevice;
  readonly config: LanguageModelConfig;
  readonly embedding: GPUBuffer;
  readonly layers: readonly GpuLayerWeights[];
  readonly normF: GPUBuffer;
  /** The embedding buffer when tied. */
  readonly lmHead: GPUBuffer;
  destroy(): void;
}

export function uploadWeights(device: GPUDevice, model: LoadedModel<'float32'>): GpuWeights {
  if (!isLanguageModel(model)) throw new Error('the native WebGPU forward runs Mamba-1 and Mamba-2 language models, not the simplified block');
  const owned: GPUBuffer[] = [];
  const upload = (label: string, data: ArrayLike<number>): GPUBuffer => {
    const buffer = device.createBuffer({ label, size: 4 * Math.max(1, data.length), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, mappedAtCreation: true });
    new Float32Array(buffer.getMappedRange()).set(data);
    buffer.unmap();
    owned.push(buffer);
    return buffer;
  };
  const up = (label: string, p: Param<'float32'> | undefined) => (p ? upload(label, p.data) : undefined);
  const scanParams = (label: string, aLog: Param<'float32'>, D: Param<'float32'>) => {
    const packed = new Float32Array(aLog.data.length + D.data.length);
    aLog.data.forEach((v, i) => (packed[i] = -Math.exp(v)));
    packed.set(D.data, aLog.data.length);
    return upload(label, packed);
  };
  const embedding = upload('embedding', model.embedding.data);
  const backbone = {
    embedding,
    normF: upload('norm_f', model.normF.data),
    lmHead: model.lmHead === model.embedding ? embedding : upload('lm_head', model.lmHead.data),
  };
  const destroy = () => owned.forEach((b) => b.destroy());
  /** What both mixers have: the pre-norm, in_proj, conv1d, A|D and out_proj. */
  const shared = (i: number, l: Mamba1LayerParams<'float32'> | Mamba2LayerParams<'float32'>) => ({
    norm: upload(`layer ${i} norm`, l.norm.data),
    inProjW: upload(`layer ${i} in_proj`, l.inProjW.data),
    inProjB: up(`layer ${i} in_proj bias`, l.inProjB),
    convW: upload(`layer ${i} conv1d`, l.convW.data),
    convB: up(`layer ${i} conv1d bias`, l.convB),
    scanParams: scanParams(`layer ${i} A|D`, l.A_log, l.D),
    outProjW: upload(`layer ${i} out_proj`, l.outProjW.data),
    outProjB: up(`layer ${i} out_proj bias`, l.outProjB),
  });
  const layer = (layer: ModelLayer<'float32'>): GpuLayerWeights => {
    const i = layer.index;
    const m1 = asKind(layer, mamba1);
    if (m1) {
      // Refused rather than run without it: the kernels have no dt/B/C norm yet.
      if (m1.config.dtBcNormEps !== undefined) throw new Error('the native WebGPU forward has no FalconMamba dt/B/C norm yet');
      const l = m1.params;
      return {
        ...shared(i, l),
        xProjW: upload(`layer ${i} x_proj`, l.xProjW.data),
        dtProjW: upload(`layer ${i} dt_proj`, l.dtProjW.data),
        dtProjB: upload(`layer ${i} dt_proj bias`, l.dtProjB.data),
      };
    }
    const m2 = asKind(layer, mamba2);
    if (!m2) throw new Error(`the native WebGPU forward has no ${layer.kind.label} layers`);
    const l = m2.params;
    return { ...shared(i, l), dtBias: upload(`layer ${i} dt_bias`, l.dtBias.data), gatedNorm: upload(`layer ${i} gated norm`, l.gatedNorm.data) };
  };
  try {
    return { device, config: model.config, ...backbone, layers: model.layers.map(layer), destroy };
  } catch (e) {
    destroy();
    throw e;
  }
}
