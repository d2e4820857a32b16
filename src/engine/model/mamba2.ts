/**
 * Mamba-2 (transformers Mamba2ForCausalLM, mamba_ssm Mamba2): parameter map.
 * in_proj output is [z (D_in), xBC (D_in + 2·G·N), dt (heads)]; the causal conv runs over xBC;
 * A_log, D and dt_bias are per head; a gated RMSNorm (norm(y ⊙ silu(z)), per group) precedes out_proj.
 */
import type { Mamba2Config } from './config';
import { findBackbone, type Param, type ParamReader, type Precision } from './params';

export interface Mamba2LayerParams<P extends Precision> {
  readonly norm: Param<P>; // [H]
  readonly inProjW: Param<P>; // [2·D_in + 2·G·N + heads, H]
  readonly inProjB?: Param<P>;
  readonly convW: Param<P>; // [D_in + 2·G·N, K]
  readonly convB?: Param<P>;
  readonly dtBias: Param<P>; // [heads]
  readonly A_log: Param<P>; // [heads]
  readonly D: Param<P>; // [heads]
  readonly gatedNorm: Param<P>; // [D_in]
  readonly outProjW: Param<P>; // [H, D_in]
  readonly outProjB?: Param<P>;
}

export interface Mamba2Params<P extends Precision> {
  readonly embedding: Param<P>;
  readonly layers: readonly Mamba2LayerParams<P>[];
  readonly normF: Param<P>;
  readonly lmHead: Param<P>;
}

export function mamba2ConvDim(c: Mamba2Config): number {
  return c.dInner + 2 * c.nGroups * c.dState;
}

export async function loadMamba2<P extends Precision>(c: Mamba2Config, r: ParamReader<P>): Promise<Mamba2Params<P>> {
  const { prefix, embeddingKey } = findBackbone(r);
  const H = c.dModel, heads = c.nHeads, K = c.dConv;
  const convDim = mamba2ConvDim(c);
  const projOut = c.dInner + convDim + heads;
  const embedding = await r.get(embeddingKey, [c.vocabSize, H]);
  const layers: Mamba2LayerParams<P>[] = [];
  for (let i = 0; i < c.nLayer; i++) {
    const p = `${prefix}layers.${i}.`;
    const m = `${p}mixer.`;
    layers.push({
      norm: await r.get(`${p}norm.weight`, [H]),
      inProjW: await r.get(`${m}in_proj.weight`, [projOut, H]),
      inProjB: c.projBias ? await r.get(`${m}in_proj.bias`, [projOut]) : undefined,
      convW: await r.get(`${m}conv1d.weight`, [convDim, 1, K], [convDim, K]),
      convB: c.convBias ? await r.get(`${m}conv1d.bias`, [convDim]) : undefined,
      dtBias: await r.get(`${m}dt_bias`, [heads]),
      A_log: await r.get(`${m}A_log`, [heads]),
      D: await r.get(`${m}D`, [heads]),
      gatedNorm: await r.get(`${m}norm.weight`, [c.dInner]),
      outProjW: await r.get(`${m}out_proj.weight`, [H, c.dInner]),
      outProjB: c.projBias ? await r.get(`${m}out_proj.bias`, [H]) : undefined,
    });
  }
  const normF = await r.get(`${prefix}norm_f.weight`, [H]);
  const lmHead = r.has('lm_head.weight') ? await r.get('lm_head.weight', [c.vocabSize, H]) : embedding;
  return { embedding, layers, normF, lmHead };
}
