/**
 * The families' MLPs in float64: SwiGLU with separate gate/up/down projections (Jamba, Bamba,
 * Falcon-H1 with its two multipliers), one fused [gate; up] input projection (Granite's
 * input_linear, Zamba2's gate_up_proj with its per-use adapter, GELU), or no gate (Nemotron-H's
 * up → relu² → down). The gate is always the first half of a fused projection (torch.chunk).
 */
import type { Activation, MlpOp } from '../hybrid/config';
import type { OpWeights, WeightSpec } from '../hybrid/weights';
import { add, columns, gelu, linear, map, scaled, silu, type F64 } from '../../reference/ops';

const ACTIVATIONS: Readonly<Record<Activation, (v: number) => number>> = {
  silu,
  gelu,
  relu2: (v) => (v > 0 ? v * v : 0),
};

export function mlpWeights(op: MlpOp, dModel: number): WeightSpec[] {
  const I = op.intermediate;
  if (op.layout === 'separate') {
    return [
      { key: `${op.key}gate_proj.weight`, shape: [I, dModel] },
      { key: `${op.key}up_proj.weight`, shape: [I, dModel] },
      { key: `${op.key}down_proj.weight`, shape: [dModel, I] },
    ];
  }
  if (op.layout === 'ungated') return [{ key: `${op.key}up_proj.weight`, shape: [I, dModel] }, { key: `${op.key}down_proj.weight`, shape: [dModel, I] }];
  const [input, output] = op.fusedNames ?? ['input_linear', 'output_linear'];
  const adapter = op.adapter ? [
    { key: `${op.key}${input}_adapter_list.${op.adapter.index}.0.weight`, shape: [op.adapter.rank, dModel] },
    { key: `${op.key}${input}_adapter_list.${op.adapter.index}.1.weight`, shape: [2 * I, op.adapter.rank] },
  ] : [];
  return [{ key: `${op.key}${input}.weight`, shape: [2 * I, dModel] }, { key: `${op.key}${output}.weight`, shape: [dModel, I] }, ...adapter];
}

/** act(gate) ⊙ up. */
function glu(gate: F64, up: F64, act: (v: number) => number): F64 {
  return { shape: up.shape, data: up.data.map((u, i) => act(gate.data[i]) * u) };
}

export function mlpReference(op: MlpOp, w: OpWeights, x: F64): F64 {
  const act = ACTIVATIONS[op.act];
  if (op.layout === 'ungated') return linear(map(linear(x, w(`${op.key}up_proj.weight`)), act), w(`${op.key}down_proj.weight`));
  if (op.layout === 'separate') {
    const gate = scaled(linear(x, w(`${op.key}gate_proj.weight`)), op.gateScale);
    const hidden = glu(gate, linear(x, w(`${op.key}up_proj.weight`)), act);
    return scaled(linear(hidden, w(`${op.key}down_proj.weight`)), op.downScale);
  }
  const [input, output] = op.fusedNames ?? ['input_linear', 'output_linear'];
  let gu = linear(x, w(`${op.key}${input}.weight`));
  if (op.adapter) {
    const at = `${op.key}${input}_adapter_list.${op.adapter.index}.`;
    gu = add(gu, linear(linear(x, w(`${at}0.weight`)), w(`${at}1.weight`)));
  }
  const I = op.intermediate;
  return linear(glu(columns(gu, 0, I), columns(gu, I, I), act), w(`${op.key}${output}.weight`));
}

/** One expert's SwiGLU on one row x [1, H]: weights given directly (views into a fused [E, …] tensor, or an expert's own). */
export function swiglu(x: F64, gateUp: { gate: F64; up: F64 } | { fused: F64 }, down: F64): F64 {
  if ('fused' in gateUp) {
    const gu = linear(x, gateUp.fused);
    const I = gu.shape[1] / 2;
    return linear(glu(columns(gu, 0, I), columns(gu, I, I), silu), down);
  }
  return linear(glu(linear(x, gateUp.gate), linear(x, gateUp.up), silu), down);
}
