/** The Mamba-2 mixer as a layer kind: scalar A per head, B and C per group of heads. */
import type { Mamba2Config } from '../../model/config';
import type { LayerKind } from '../kind';
import { MAMBA2_PARAMS } from './params';
import { mamba2Reference } from './reference';
import { mamba2Tfjs, type Mamba2Weights } from './tfjs';
import { mamba2WebGpu, type Mamba2GpuWeights } from './webgpu';

export const mamba2: LayerKind<Mamba2Config, typeof MAMBA2_PARAMS, Mamba2Weights, Mamba2GpuWeights> = {
  id: 'mamba2',
  label: 'Mamba-2 mixer',
  accepts: (config): config is Mamba2Config => config.arch === 'mamba2',
  params: MAMBA2_PARAMS,
  internals: (c) => {
    const H = [c.dModel], D = [c.dInner], GN = [c.nGroups * c.dState];
    return { hidden_in: H, z: D, u: D, delta: [c.nHeads], B: GN, C: GN, y: D, h: [c.nHeads, c.headDim, c.dState], conv_state: [c.dConv - 1, c.dInner + 2 * c.nGroups * c.dState], out: H, hidden_out: H };
  },
  scanView: (c, p) => ({
    aLog: p.A_log, D: p.D, groups: c.nGroups, channels: c.dInner, deltaWidth: c.nHeads, deltaUnit: 'heads', stateWidth: c.nGroups * c.dState, chunkSize: c.chunkSize,
  }),
  reference: mamba2Reference,
  tfjs: mamba2Tfjs,
  webgpu: mamba2WebGpu,
};
