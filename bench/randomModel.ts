/**
 * A random-weight Mamba-1 with mamba-130m's shape (the transformers anchor of issue 4 uses
 * random weights too). Scales follow the usual initialisation, so activations, Δ and the decays
 * exp(Δ·A) sit in the ranges a trained model produces: speed does not depend on the values, but
 * NaNs or overflows would hide slow paths.
 */
import type { Mamba1Config } from '../src/engine/model/config';
import type { LoadedModel } from '../src/engine/model/load';
import type { Mamba1LayerParams } from '../src/engine/model/mamba1';
import type { Param } from '../src/engine/model/params';

export const MAMBA_130M: Mamba1Config = {
  arch: 'mamba1',
  dModel: 768,
  nLayer: 24,
  dInner: 1536,
  dState: 16,
  dConv: 4,
  dtRank: 48,
  vocabSize: 50280,
  eps: 1e-5,
  convBias: true,
  projBias: false,
  tieEmbeddings: true,
};

export function randomMamba1(config: Mamba1Config, seed = 1): LoadedModel<'float32'> {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  const tensor = (shape: number[], f: (i: number) => number): Param<'float32'> => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = f(i);
    return { shape, data };
  };
  const uniform = (shape: number[], bound: number) => tensor(shape, () => (2 * next() - 1) * bound);
  const H = config.dModel, D = config.dInner, N = config.dState, R = config.dtRank, K = config.dConv;
  const layer = (): Mamba1LayerParams<'float32'> => ({
    norm: tensor([H], () => 1),
    inProjW: uniform([2 * D, H], 1 / Math.sqrt(H)),
    convW: uniform([D, K], 1 / Math.sqrt(K)),
    convB: uniform([D], 1 / Math.sqrt(K)),
    xProjW: uniform([R + 2 * N, D], 1 / Math.sqrt(D)),
    dtProjW: uniform([D, R], 1 / Math.sqrt(R)),
    // softplus⁻¹ of Δ drawn log-uniformly in [1e-3, 0.1], as mamba_ssm initialises dt_proj's bias.
    dtProjB: tensor([D], () => {
      const dt = 1e-3 * Math.pow(100, next());
      return dt + Math.log(-Math.expm1(-dt));
    }),
    A_log: tensor([D, N], (i) => Math.log(1 + (i % N))),
    D: tensor([D], () => 1),
    outProjW: uniform([H, D], 1 / Math.sqrt(D)),
  });
  const embedding = uniform([config.vocabSize, H], 1);
  return {
    config,
    params: {
      embedding,
      layers: Array.from({ length: config.nLayer }, layer),
      normF: tensor([H], () => 1),
      lmHead: embedding,
    },
  };
}

/** The model's tensors under transformers' checkpoint keys (MambaForCausalLM, tied head): what the host sends the panel. */
export function mamba1CheckpointTensors(model: LoadedModel<'float32'>): Map<string, Param<'float32'>> {
  const c = model.config as Mamba1Config;
  const p = model.params as { embedding: Param<'float32'>; normF: Param<'float32'>; layers: readonly Mamba1LayerParams<'float32'>[] };
  const out = new Map<string, Param<'float32'>>([['backbone.embeddings.weight', p.embedding], ['backbone.norm_f.weight', p.normF]]);
  p.layers.forEach((l, i) => {
    const m = `backbone.layers.${i}.mixer.`;
    out.set(`backbone.layers.${i}.norm.weight`, l.norm);
    out.set(`${m}in_proj.weight`, l.inProjW);
    out.set(`${m}conv1d.weight`, { shape: [c.dInner, 1, c.dConv], data: l.convW.data });
    if (l.convB) out.set(`${m}conv1d.bias`, l.convB);
    out.set(`${m}x_proj.weight`, l.xProjW);
    out.set(`${m}dt_proj.weight`, l.dtProjW);
    out.set(`${m}dt_proj.bias`, l.dtProjB);
    out.set(`${m}A_log`, l.A_log);
    out.set(`${m}D`, l.D);
    out.set(`${m}out_proj.weight`, l.outProjW);
  });
  return out;
}
