/**
 * Scan kernels for the backends whose tensors live in CPU memory (cpu, wasm): read the inputs,
 * run the sequential loop of the reference (state stored in float32), upload the outputs.
 * On these backends the loop does L·D·N work where the tfjs-ops prefix scan does log2(chunk)
 * times more through generic broadcasting ops, so the loop is the fast path there. The conv +
 * SiLU runs the same way: its five tfjs ops would put four [L, C] temporaries in the wasm heap,
 * which never shrinks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { causalConvSilu } from '../reference/ops';
import { selectiveScan, selectiveScanHeads } from '../reference/scan';
import type { Tensor } from '../tensor';
import type { ScanKernels } from './scan';

function read(t: tf.Tensor): Tensor<Float32Array> {
  return { shape: t.shape, data: t.dataSync() as Float32Array };
}

function upload<R extends tf.Rank>(t: Tensor<Float32Array>): tf.Tensor<R> {
  return tf.tensor(t.data, [...t.shape] as tf.ShapeMap[R], 'float32') as tf.Tensor<R>;
}

export const hostLoopKernels: ScanKernels = {
  scan: ({ u, delta, A, B, C, D, z, statesAt }) => {
    const r = selectiveScan(read(u), read(delta), read(A), read(B), read(C), read(D), statesAt, Float32Array);
    const y = upload<tf.Rank.R2>(r.y);
    return {
      y,
      gated: z ? tf.tidy(() => tf.mul(y, tf.mul(z, tf.sigmoid(z))) as tf.Tensor2D) : undefined,
      h: statesAt.length ? upload<tf.Rank.R3>(r.h) : undefined,
    };
  },
  headScan: ({ x, delta, A, B, C, D, groups, statesAt }) => {
    const r = selectiveScanHeads(read(x), read(delta), read(A), read(B), read(C), read(D), groups, statesAt, Float32Array);
    return { y: upload<tf.Rank.R2>(r.y), h: statesAt.length ? upload<tf.Rank.R4>(r.h) : undefined };
  },
  convSilu: (x, w, b) => upload<tf.Rank.R2>(causalConvSilu(read(x), read(w), b && read(b), Float32Array)),
};
