/** The Mamba-1 mixer as a layer kind: its parameters, internals, scan and forwards. */
import type { Mamba1Config } from '../../model/config';
import type { LayerKind } from '../kind';
import { MAMBA1_PARAMS } from './params';
import { mamba1Reference } from './reference';
import { mamba1Tfjs, type Mamba1Weights } from './tfjs';
import { mamba1WebGpu, type Mamba1GpuWeights } from './webgpu';

export const mamba1: LayerKind<Mamba1Config, typeof MAMBA1_PARAMS, Mamba1Weights, Mamba1GpuWeights> = {
  id: 'mamba1',
  label: 'Mamba-1 mixer',
  accepts: (config): config is Mamba1Config => config.arch === 'mamba1',
  params: MAMBA1_PARAMS,
  internals: (c) => {
    const H = [c.dModel], D = [c.dInner], N = [c.dState];
    return { hidden_in: H, z: D, u: D, delta: D, B: N, C: N, y: D, h: [c.dInner, c.dState], conv_state: [c.dConv - 1, c.dInner], out: H, hidden_out: H };
  },
  scanView: (c, p) => ({ aLog: p.A_log, D: p.D, groups: 1, channels: c.dInner, deltaWidth: c.dInner, deltaUnit: 'channels', stateWidth: c.dState }),
  reference: mamba1Reference,
  tfjs: mamba1Tfjs,
  webgpu: mamba1WebGpu,
};
