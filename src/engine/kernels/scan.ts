/**
 * The selective scan on WebGPU (Mamba-1 and Mamba-2), behind the same contract as the tfjs-ops
 * scan of ../tfjs/scan.ts, so the tfjs forward swaps it in when the backend is 'webgpu'.
 *
 * Fused: one pass, one invocation per channel — D invocations. Enough on a CPU (SwiftShader), far
 * too few to fill a GPU at small D (the scan is then latency-bound: one token after another).
 * Chunked: the tokens are cut into chunks scanned side by side (chunks × D invocations), in three
 * dispatches: chunk end states from zero, the carry of start states across chunks, and the
 * output pass from the carried states. It does the state update twice, for many times the
 * parallelism.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TfHeadScan, TfHeadScanInputs, TfScan, TfScanInputs, TfScanOutputs } from '../tfjs/scan';
import { isSoftwareGpu, runFlatProgram, splitFlat, webgpuBackend, type FlatPart, type IntUniform } from './program';
import { carryKernel, chunkEndKernel, outputKernel, SCAN_UNIFORM_NAMES, scanUniforms, type ScanGeometry, type ScanKernelOptions } from './scanShaders';

interface ScanTensors {
  readonly u: tf.Tensor;
  readonly delta: tf.Tensor;
  readonly A: tf.Tensor;
  readonly B: tf.Tensor;
  readonly C: tf.Tensor;
  readonly D: tf.Tensor;
  readonly z?: tf.Tensor;
  readonly statesAt: Int32Array;
}

/**
 * Invocations that keep a big GPU busy: an H100/H200 runs about 2048 per SM on 132 SMs; half of
 * that already hides the memory latency of this loop.
 */
const GPU_PARALLELISM = 1 << 17;
/** Shorter chunks make the sequential carry (one step per chunk) dominate. */
const MIN_CHUNK = 16;

/**
 * Tokens per chunk: the whole sequence (fused) on a CPU implementation or when D channels
 * already fill the device, else as many chunks as it takes to reach GPU_PARALLELISM.
 */
export function defaultChunkLength(L: number, channels: number, software: boolean): number {
  if (software) return L;
  const chunks = Math.ceil(GPU_PARALLELISM / channels);
  return chunks <= 2 ? L : Math.max(MIN_CHUNK, Math.ceil(L / chunks));
}

/** Mamba-1 scan, chunked by the device's default. */
export const webgpuScan: TfScan = (inputs) => webgpuScanChunked(inputs);

/** Mamba-1 scan in one pass (one invocation per channel). */
export const webgpuScanFused: TfScan = (inputs) => webgpuScanChunked(inputs, inputs.u.shape[0]);

/** Mamba-1 scan with `chunkLen` tokens per chunk (≥ L: the fused single pass). */
export function webgpuScanChunked(inputs: TfScanInputs, chunkLen?: number): TfScanOutputs {
  const [L, channels] = inputs.u.shape;
  const N = inputs.A.shape[1];
  expectShape('u', inputs.u, [L, channels]);
  expectShape('delta', inputs.delta, [L, channels]);
  expectShape('A', inputs.A, [channels, N]);
  expectShape('B', inputs.B, [L, N]);
  expectShape('C', inputs.C, [L, N]);
  expectShape('D', inputs.D, [channels]);
  if (inputs.z) expectShape('z', inputs.z, [L, channels]);
  const geometry = { L, channels, N, heads: channels, headDim: 1, groups: 1, aPerState: true };
  const out = runScan(geometry, inputs, [channels, N], chunkLen);
  return { y: out.y, ...(out.gated ? { gated: out.gated } : {}), ...(out.h ? { h: out.h as tf.Tensor3D } : {}) };
}

/** Mamba-2 scan (scalar A per head, B/C per group), chunked by the device's default. */
export const webgpuHeadScan: TfHeadScan = (inputs) => webgpuHeadScanChunked(inputs);

export function webgpuHeadScanChunked(inputs: TfHeadScanInputs, chunkLen?: number): { y: tf.Tensor2D; h?: tf.Tensor4D } {
  const [L, channels] = inputs.x.shape;
  const heads = inputs.A.shape[0];
  const { groups } = inputs;
  if (!Number.isInteger(groups) || groups < 1 || heads % groups !== 0) throw new RangeError(`head scan: ${heads} heads cannot form ${groups} groups`);
  if (channels % heads !== 0) throw new RangeError(`head scan: ${channels} channels do not split into ${heads} heads`);
  const GN = inputs.B.shape[1];
  if (GN % groups !== 0) throw new RangeError(`head scan: B has ${GN} columns, not a multiple of ${groups} groups`);
  const N = GN / groups;
  expectShape('x', inputs.x, [L, channels]);
  expectShape('delta', inputs.delta, [L, heads]);
  expectShape('A', inputs.A, [heads]);
  expectShape('B', inputs.B, [L, GN]);
  expectShape('C', inputs.C, [L, GN]);
  expectShape('D', inputs.D, [heads]);
  const geometry = { L, channels, N, heads, headDim: channels / heads, groups, aPerState: false };
  const out = runScan(geometry, { ...inputs, u: inputs.x }, [heads, channels / heads, N], chunkLen);
  return { y: out.y, ...(out.h ? { h: out.h as tf.Tensor4D } : {}) };
}

/** `stateShape`: the shape of one captured state ([D, N], or [heads, P, N] for Mamba-2). */
function runScan(g: ScanGeometry, t: ScanTensors, stateShape: number[], chunkLen?: number): { y: tf.Tensor2D; gated?: tf.Tensor2D; h?: tf.Tensor } {
  const { L, channels, N } = g;
  if (L < 1) throw new RangeError('scan: the sequence is empty');
  const slots = slotPerToken(t.statesAt, L);
  const len = Math.max(1, Math.min(L, chunkLen ?? defaultChunkLength(L, channels, isSoftwareGpu(webgpuBackend()))));
  const chunks = Math.ceil(L / len);
  const vec4 = N % 4 === 0;
  const kernel: ScanKernelOptions = { N, aPerState: g.aPerState, vec4 };
  const rows = vec4 ? 4 : 1;
  const tag = `${N}_${g.aPerState ? 'a' : 'h'}${vec4 ? '_v4' : ''}`;
  const T = t.statesAt.length;
  const params = scanParams(t, slots);
  const shared = (numChunks: number): IntUniform[] => {
    const values = scanUniforms(g, len, numChunks);
    return SCAN_UNIFORM_NAMES.map((name, i) => ({ name, value: values[i] }));
  };
  const disposeAfter: tf.Tensor[] = [params];

  let carried: tf.Tensor | undefined;
  if (chunks > 1) {
    const ends = runFlatProgram({
      key: `mamba_scan_chunk_end_${tag}`,
      inputs: [['U', t.u], ['Delta', t.delta], ['Params', params], ['Bm', t.B, rows]],
      uniforms: shared(chunks - 1),
      threads: (chunks - 1) * channels,
      outputSize: (chunks - 1) * (N + 1) * channels,
      code: chunkEndKernel(kernel),
    });
    carried = runFlatProgram({
      key: `mamba_scan_carry_${tag}`,
      inputs: [['S', ends], ['Params', params]],
      uniforms: shared(chunks - 1),
      threads: N * channels,
      outputSize: (chunks - 1) * N * channels,
      code: carryKernel(kernel),
    });
    disposeAfter.push(ends, carried);
  }

  const gate = t.z !== undefined;
  const inputs: [string, tf.Tensor, (1 | 4)?][] = [['U', t.u], ['Delta', t.delta], ['Params', params], ['Bm', t.B, rows], ['Cm', t.C, rows]];
  if (t.z) inputs.push(['Z', t.z]);
  if (carried) inputs.push(['H0', carried]);
  const LD = L * channels;
  const packed = runFlatProgram({
    key: `mamba_scan_output_${tag}_${gate ? 'g' : ''}${T > 0 ? 's' : ''}${carried ? 'c' : ''}`,
    inputs,
    uniforms: shared(chunks),
    threads: chunks * channels,
    outputSize: LD * (gate ? 2 : 1) + T * channels * N,
    code: outputKernel({ ...kernel, gate, states: T > 0, carried: carried !== undefined }),
  });
  // tfjs programs have one output: y, the gated y and the states come packed in one buffer.
  const parts: FlatPart[] = [{ offset: 0, shape: [L, channels] }];
  if (gate) parts.push({ offset: LD, shape: [L, channels] });
  if (T > 0) parts.push({ offset: LD * (gate ? 2 : 1), shape: [T, ...stateShape] });
  const split = parts.length === 1 ? [tf.reshape(packed, [L, channels])] : splitFlat(packed, parts);
  const out = { y: split[0] as tf.Tensor2D, ...(gate ? { gated: split[1] as tf.Tensor2D } : {}), ...(T > 0 ? { h: split[split.length - 1] } : {}) };
  packed.dispose();
  // Disposing right after recording is safe: tfjs-backend-webgpu defers freeing buffers that
  // commands still to be submitted use.
  for (const x of disposeAfter) x.dispose();
  return out;
}

/** [A | D | slots] as one float32 tensor (see scanShaders.ts: the storage-buffer limit). */
function scanParams(t: ScanTensors, slots: Float32Array | undefined): tf.Tensor1D {
  return tf.tidy(() => {
    const parts: tf.Tensor1D[] = [tf.reshape(t.A, [-1]), tf.reshape(t.D, [-1])];
    if (slots) parts.push(tf.tensor1d(slots));
    return tf.concat1d(parts);
  });
}

/**
 * slot[t] = index of t in statesAt, or −1 (as floats: exact far beyond any sequence length); none
 * when no state is asked for. The kernels read one slot per token, so statesAt must be strictly
 * increasing here, unlike internals.ts's stateSlots (any order, repeats), which the host-side scans use.
 */
function slotPerToken(statesAt: Int32Array, L: number): Float32Array | undefined {
  if (statesAt.length === 0) return undefined;
  const slots = new Float32Array(L).fill(-1);
  statesAt.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0 || t >= L) throw new RangeError(`scan: state position ${t} is outside a ${L}-token sequence`);
    if (i > 0 && t <= statesAt[i - 1]) throw new RangeError('scan: statesAt must be strictly increasing');
    slots[t] = i;
  });
  return slots;
}

function expectShape(name: string, t: tf.Tensor, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new RangeError(`scan: ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  if (t.dtype !== 'float32') throw new RangeError(`scan: ${name} is ${t.dtype}, expected float32`);
}
