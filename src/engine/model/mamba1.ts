/**
 * Mamba-1 (transformers MambaForCausalLM and mamba_ssm MambaLMHeadModel): parameter map.
 * Per layer: RMSNorm → in_proj → [x, z] → causal depthwise conv1d + SiLU → u → x_proj →
 * [dt, B, C] → dt_proj + softplus → scan → y ⊙ silu(z) → out_proj → residual.
 */
import type { Mamba1Config } from './config';
import { findBackbone, type Param, type ParamReader, type Precision } from './params';

export interface Mamba1LayerParams<P extends Precision> {
  readonly norm: Param<P>; // [H]
  readonly inProjW: Param<P>; // [2D, H]: rows 0..D-1 make x, D..2D-1 make z
  readonly inProjB?: Param<P>;
  readonly convW: Param<P>; // [D, K] (stored [D, 1, K])
  readonly convB?: Param<P>;
  readonly xProjW: Param<P>; // [R + 2N, D]: dt, B, C
  readonly dtProjW: Param<P>; // [D, R]
  readonly dtProjB: Param<P>; // [D]
  readonly A_log: Param<P>; // [D, N]
  readonly D: Param<P>; // [D]
  readonly outProjW: Param<P>; // [H, D]
  readonly outProjB?: Param<P>;
}

export interface Mamba1Params<P extends Precision> {
  readonly embedding: Param<P>; // [V, H]
  readonly layers: readonly Mamba1LayerParams<P>[];
  readonly normF: Param<P>; // [H]
  readonly lmHead: Param<P>; // [V, H], the embedding itself when tied
}

export async function loadMamba1<P extends Precision>(c: Mamba1Config, r: ParamReader<P>): Promise<Mamba1Params<P>> {
  const { prefix, embeddingKey } = findBackbone(r);
  const H = c.dModel, D = c.dInner, N = c.dState, K = c.dConv, R = c.dtRank;
  const embedding = await r.get(embeddingKey, [c.vocabSize, H]);
  const layers: Mamba1LayerParams<P>[] = [];
  for (let i = 0; i < c.nLayer; i++) {
    const p = `${prefix}layers.${i}.`;
    const m = `${p}mixer.`;
    layers.push({
      norm: await r.get(`${p}norm.weight`, [H]),
      inProjW: await r.get(`${m}in_proj.weight`, [2 * D, H]),
      inProjB: c.projBias ? await r.get(`${m}in_proj.bias`, [2 * D]) : undefined,
      convW: await r.get(`${m}conv1d.weight`, [D, 1, K], [D, K]),
      convB: c.convBias ? await r.get(`${m}conv1d.bias`, [D]) : undefined,
      xProjW: await r.get(`${m}x_proj.weight`, [R + 2 * N, D]),
      dtProjW: await r.get(`${m}dt_proj.weight`, [D, R]),
      dtProjB: await r.get(`${m}dt_proj.bias`, [D]),
      A_log: await r.get(`${m}A_log`, [D, N]),
      D: await r.get(`${m}D`, [D]),
      outProjW: await r.get(`${m}out_proj.weight`, [H, D]),
      outProjB: c.projBias ? await r.get(`${m}out_proj.bias`, [H]) : undefined,
    });
  }
  const normF = await r.get(`${prefix}norm_f.weight`, [H]);
  const lmHead = r.has('lm_head.weight') ? await r.get('lm_head.weight', [c.vocabSize, H]) : embedding;
  return { embedding, layers, normF, lmHead };
}
