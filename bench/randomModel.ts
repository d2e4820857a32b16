/**
 * Random-weight models: a Mamba-1 with mamba-130m's shape, and a Mamba-2 with mamba2-130m's (the transformers anchor of issue 4 uses
 * random weights too). Scales follow the usual initialisation, so activations, Δ and the decays
 * exp(Δ·A) sit in the ranges a trained model produces: speed does not depend on the values, but
 * NaNs or overflows would hide slow paths.
 */
import type { Mamba1Config, Mamba2Config } from '../src/engine/model/config';
import { MemoryTensorStore } from '../src/engine/formats/memoryStore';
import type { LoadedModel } from '../src/engine/model/graph';
import { loadModel } from '../src/engine/model/load';
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

/** A linear congruential generator (reproducible across runs and machines) and tensors drawn from it. */
function lcg(seed: number) {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  const fill = (shape: number[], f: (i: number) => number): Param<'float32'> => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = f(i);
    return { shape, data };
  };
  return { next, fill, uniform: (shape: number[], bound: number) => fill(shape, () => (2 * next() - 1) * bound) };
}

/** state-spaces/mamba2-130m: 24 heads of 64 channels, N 128, one group. */
export const MAMBA2_130M: Mamba2Config = {
  arch: 'mamba2',
  dModel: 768,
  nLayer: 24,
  dInner: 1536,
  nHeads: 24,
  headDim: 64,
  dState: 128,
  nGroups: 1,
  normGroupSize: 1536,
  dConv: 4,
  chunkSize: 256,
  vocabSize: 50280,
  eps: 1e-5,
  convBias: true,
  projBias: false,
  tieEmbeddings: true,
  timeStepLimit: [0, Infinity],
};

/** Random weights under transformers' checkpoint keys (MambaForCausalLM, tied head): what the host sends the panel. */
export function randomMamba1Checkpoint(config: Mamba1Config, seed = 1): Map<string, Param<'float32'>> {
  const random = lcg(seed);
  const tensor = random.fill, uniform = random.uniform, next = random.next;
  const H = config.dModel, D = config.dInner, N = config.dState, R = config.dtRank, K = config.dConv;
  const out = new Map<string, Param<'float32'>>();
  for (let i = 0; i < config.nLayer; i++) {
    const m = `backbone.layers.${i}.mixer.`;
    out.set(`backbone.layers.${i}.norm.weight`, tensor([H], () => 1));
    out.set(`${m}in_proj.weight`, uniform([2 * D, H], 1 / Math.sqrt(H)));
    out.set(`${m}conv1d.weight`, uniform([D, 1, K], 1 / Math.sqrt(K)));
    out.set(`${m}conv1d.bias`, uniform([D], 1 / Math.sqrt(K)));
    out.set(`${m}x_proj.weight`, uniform([R + 2 * N, D], 1 / Math.sqrt(D)));
    out.set(`${m}dt_proj.weight`, uniform([D, R], 1 / Math.sqrt(R)));
    // softplus⁻¹ of Δ drawn log-uniformly in [1e-3, 0.1], as mamba_ssm initialises dt_proj's bias.
    out.set(`${m}dt_proj.bias`, tensor([D], () => {
      const dt = 1e-3 * Math.pow(100, next());
      return dt + Math.log(-Math.expm1(-dt));
    }));
    out.set(`${m}A_log`, tensor([D, N], (j) => Math.log(1 + (j % N))));
    out.set(`${m}D`, tensor([D], () => 1));
    out.set(`${m}out_proj.weight`, uniform([H, D], 1 / Math.sqrt(D)));
  }
  // Drawn after the layers, as the weights were drawn before they were keyed by checkpoint name.
  out.set('backbone.embeddings.weight', uniform([config.vocabSize, H], 1));
  out.set('backbone.norm_f.weight', tensor([H], () => 1));
  return out;
}

/** The same for Mamba-2 (Mamba2ForCausalLM's keys): in_proj makes [z | xBC | dt], A and D per head. */
export function randomMamba2Checkpoint(config: Mamba2Config, seed = 1): Map<string, Param<'float32'>> {
  const random = lcg(seed);
  const H = config.dModel, Din = config.dInner, heads = config.nHeads, GN = config.nGroups * config.dState, K = config.dConv;
  const convDim = Din + 2 * GN;
  const out = new Map<string, Param<'float32'>>();
  for (let i = 0; i < config.nLayer; i++) {
    const m = `backbone.layers.${i}.mixer.`;
    out.set(`backbone.layers.${i}.norm.weight`, random.fill([H], () => 1));
    out.set(`${m}in_proj.weight`, random.uniform([Din + convDim + heads, H], 1 / Math.sqrt(H)));
    out.set(`${m}conv1d.weight`, random.uniform([convDim, 1, K], 1 / Math.sqrt(K)));
    out.set(`${m}conv1d.bias`, random.uniform([convDim], 1 / Math.sqrt(K)));
    out.set(`${m}dt_bias`, random.fill([heads], () => {
      const dt = 1e-3 * Math.pow(100, random.next());
      return dt + Math.log(-Math.expm1(-dt));
    }));
    out.set(`${m}A_log`, random.fill([heads], (j) => Math.log(1 + (j % 16))));
    out.set(`${m}D`, random.fill([heads], () => 1));
    out.set(`${m}norm.weight`, random.fill([Din], () => 1));
    out.set(`${m}out_proj.weight`, random.uniform([H, Din], 1 / Math.sqrt(Din)));
  }
  out.set('backbone.embeddings.weight', random.uniform([config.vocabSize, H], 1));
  out.set('backbone.norm_f.weight', random.fill([H], () => 1));
  return out;
}

export function randomMamba2(config: Mamba2Config, seed = 1): Promise<LoadedModel<'float32'>> {
  return loadModel(config, new MemoryTensorStore('random Mamba-2', randomMamba2Checkpoint(config, seed)), 'float32');
}

export function randomMamba1(config: Mamba1Config, seed = 1): Promise<LoadedModel<'float32'>> {
  return loadModel(config, new MemoryTensorStore('random Mamba-1', randomMamba1Checkpoint(config, seed)), 'float32');
}
