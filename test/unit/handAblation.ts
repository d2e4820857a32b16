/**
 * An ablation computed by hand, for the tests of the interventions (cli, forgotten): in the LAST
 * layer of a Mamba-1 model, ablating token s's write is that layer's plain scan with B_s zeroed,
 * then its gate, out_proj, the residual, the final norm and the lm_head, from the clean run's own
 * tensors. No intervention code runs. And the KL written out.
 */
import { asKind } from '../../src/engine/layers/kind';
import { mamba1 } from '../../src/engine/layers/mamba1';
import type { ForwardResult } from '../../src/engine/internals';
import type { LanguageModel } from '../../src/engine/model/graph';
import { add, gate, linear, rmsNorm, type F64 } from '../../src/engine/reference/ops';
import { negExp, selectiveScan } from '../../src/engine/reference/scan';

/** The logits with token s's write ablated in the last layer; `clean` must keep that layer's internals. */
export function lastLayerAblated(model: LanguageModel<'float64'>, clean: ForwardResult<Float64Array>, s: number): F64 {
  const index = model.layers.length - 1;
  const layer = asKind(model.layers[index], mamba1);
  const x = clean.layers.find((l) => l.layer === index)?.tensors;
  if (!layer || !x) throw new Error('lastLayerAblated: a Mamba-1 model and the clean run of its last layer');
  const N = x.B!.shape[1];
  const B = { shape: x.B!.shape, data: Float64Array.from(x.B!.data, (v, i) => (Math.floor(i / N) === s ? 0 : v)) };
  const { y } = selectiveScan(x.u as F64, x.delta as F64, negExp(layer.params.A_log), B, x.C as F64, layer.params.D, new Int32Array(0));
  const hidden = add(x.hidden_in as F64, linear(gate(y, x.z as F64), layer.params.outProjW, layer.params.outProjB));
  return linear(rmsNorm(hidden, model.normF, layer.config.eps), model.lmHead);
}

/** Mean over positions from..L−1 of KL(softmax(p_t) ‖ softmax(q_t)), by plain loops. */
export function meanKl(p: F64, q: F64, from: number): number {
  const [L, V] = p.shape;
  const logSoftmax = (row: Float64Array) => {
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    return row.map((v) => v - lse);
  };
  let sum = 0;
  for (let t = from; t < L; t++) {
    const a = logSoftmax(p.data.subarray(t * V, (t + 1) * V)), b = logSoftmax(q.data.subarray(t * V, (t + 1) * V));
    sum += a.reduce((acc, v, i) => acc + Math.exp(v) * (v - b[i]), 0);
  }
  return sum / (L - from);
}
