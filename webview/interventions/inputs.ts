/**
 * What the host read for the interventions (a steer's vector, a patch-state's state and conv
 * context) turned back into the engine's InterventionInputs, keyed by each intervention as
 * layerEdits looks them up.
 */
import type { Intervention, InterventionInputs, StatePatch } from '../../src/engine/interventions';
import { fromTensorMessage, ProtocolError, type InterventionInputMessage } from '../../src/protocol';

export function inputsFromMessages(interventions: readonly Intervention[], messages: readonly InterventionInputMessage[]): InterventionInputs {
  if (messages.length !== interventions.length) throw new ProtocolError('readInterventionInputs', `answered ${messages.length} inputs for ${interventions.length} interventions`);
  const inputs = new Map<Intervention, Float64Array | StatePatch>();
  interventions.forEach((i, k) => {
    const m = messages[k];
    if (!m) return;
    const floats = (t: Parameters<typeof fromTensorMessage>[0], name: string) => Float64Array.from(fromTensorMessage(t, `${i.kind} ${name}`).data);
    if ('vector' in m) inputs.set(i, floats(m.vector, 'vector'));
    else inputs.set(i, { token: m.patch.token, h: floats(m.patch.h, 'h'), conv: floats(m.patch.conv, 'conv_state') });
  });
  return inputs;
}
