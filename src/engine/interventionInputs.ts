/**
 * What the interventions need besides their spec, read once for every caller (the CLI, the
 * panel): the model's shape that layerEdits checks them against, each steer's vector, and each
 * patch-state's state and conv context from its dump, checked against the model.
 */
import { InputError } from './errors';
import { dumpKey } from './formats/dump';
import type { TensorStore } from './formats/safetensors';
import { describeIntervention, type EditedModel, type Intervention, type InterventionInputs, type PathAblation, type StatePatch } from './interventions';
import { layerKinds } from './layers';
import type { HybridLayerConfig } from './layers/hybrid/config';
import type { LanguageModelConfig } from './model/config';

/**
 * The paths of a hybrid layer that ablate-path can replace: those whose output the layer records
 * (ssm_out, attn_out, mlp_out). Zamba2's shared block is not one: its attention and MLP feed the
 * layer's Mamba operation, and are not recorded.
 */
function layerPaths(c: HybridLayerConfig): PathAblation['path'][] {
  const ops = c.branches.flatMap((b) => b.ops);
  return [
    ...(ops.some((op) => op.kind === 'mamba1' || op.kind === 'mamba2') ? ['ssm' as const] : []),
    ...(ops.some((op) => op.kind === 'attention') ? ['attention' as const] : []),
    ...(c.branches.some((b) => b.ops.every((op) => op.kind === 'mlp' || op.kind === 'moe')) ? ['mlp' as const] : []),
  ];
}

/** The model as layerEdits checks interventions against it: its layers, Δ's widest columns, d_model, each layer's paths. */
export function editedModel(config: LanguageModelConfig): EditedModel {
  const kinds = layerKinds(config);
  return {
    layers: config.nLayer,
    deltaColumns: Math.max(0, ...kinds.map((k) => k.internals.delta?.[0] ?? 0)),
    dModel: config.dModel,
    paths: config.arch === 'hybrid' ? config.layers.map(layerPaths) : [],
  };
}

/** Opens a tensor file (safetensors, .npy, .npz) by path: the CLI's from disk, the panel's through its host. */
export type OpenTensors = (path: string) => Promise<TensorStore>;

/** Reads what each steer and patch-state needs, for a run of L tokens of this model. */
export async function readInterventionInputs(interventions: readonly Intervention[], L: number, config: LanguageModelConfig, open: OpenTensors): Promise<InterventionInputs> {
  const inputs = new Map<Intervention, Float64Array | StatePatch>();
  for (const i of interventions) {
    if (i.kind === 'steer') {
      const store = await open(i.vector.file);
      if (!store.info(i.vector.key)) throw new InputError(i.vector.file, `has no tensor "${i.vector.key}" (it has ${store.names().join(', ')})`);
      inputs.set(i, Float64Array.from((await store.readFloat(i.vector.key, 'float64')).data));
    }
    if (i.kind === 'patch-state') inputs.set(i, await statePatch(i, await open(i.from), L, config));
  }
  return inputs;
}

/**
 * patch-state's source: layer ℓ's state h and conv context conv_state after token t in the dump
 * (written by inspect --states-at t; the dump's run may be of other tokens and of another length).
 */
async function statePatch(i: Intervention & { kind: 'patch-state' }, dump: TensorStore, L: number, config: LanguageModelConfig): Promise<StatePatch> {
  const source = `intervention "${describeIntervention(i)}"`;
  const kinds = layerKinds(config);
  if (!Number.isInteger(i.layer) || i.layer < 0 || i.layer >= kinds.length) throw new InputError(source, `layer ${i.layer} is outside the model's ${kinds.length} layers`);
  const token = i.token < 0 ? L + i.token : i.token;
  if (token < 0 || token >= L) throw new InputError(source, `token ${i.token} is outside the ${L}-token sample`);
  const kind = kinds[i.layer];
  const shapes = { h: kind.internals.h, conv_state: kind.internals.conv_state };
  if (!shapes.h || !shapes.conv_state) throw new InputError(source, `layer ${i.layer} (${kind.label}) has no recurrent state to patch`);
  const redo = `write it with the float64 reference's inspect --states-at ${token}`;
  const tokensKey = dumpKey(i.layer, 'h_tokens');
  if (!dump.info(tokensKey)) throw new InputError(dump.name, `has no states of layer ${i.layer} (${tokensKey}): ${redo}`);
  const tokens = Array.from((await dump.readNative(tokensKey)).data as ArrayLike<number>);
  const row = tokens.indexOf(token);
  if (row < 0) throw new InputError(dump.name, `holds layer ${i.layer}'s state after tokens ${tokens.join(', ')}, not after token ${token}: ${redo}`);
  const rowOf = async (name: 'h' | 'conv_state', want: readonly number[]): Promise<Float64Array> => {
    const key = dumpKey(i.layer, name);
    const info = dump.info(key);
    if (!info) throw new InputError(dump.name, `has no ${key}${name === 'conv_state' ? ' (the conv context patch-state also replaces)' : ''}: ${redo}`);
    const [T, ...shape] = info.shape;
    if (T !== tokens.length || shape.join() !== want.join()) throw new InputError(dump.name, `${key} is [${info.shape.join(', ')}]; layer ${i.layer} of this model needs [${tokens.length}, ${want.join(', ')}]: a dump of another model shape`);
    const size = want.reduce((a, b) => a * b, 1);
    return (await dump.readFloat(key, 'float64')).data.slice(row * size, (row + 1) * size);
  };
  return { token, h: await rowOf('h', shapes.h), conv: await rowOf('conv_state', shapes.conv_state) };
}
