/**
 * Running our own WGSL through tfjs-backend-webgpu, so the kernels read and write ordinary tfjs
 * tensors (no copies in or out of the tfjs graph).
 *
 * This relies on internals of tfjs-backend-webgpu that are not public API — the WebGPUProgram
 * shape, `backend.runWebGPUProgram` and the shader prelude it generates (`result` as the output
 * array, each input as a storage array named after `variableNames`, `uniforms.*`, and
 * `main(index)` called once per invocation). package.json pins 4.22.0 exactly for that reason.
 */
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs-core';
import { sizeOf } from '../tensor';

/** Threads per workgroup. 64 keeps every NVIDIA/AMD/Intel wave full and suits SwiftShader. */
export const WORKGROUP = 64;

export interface IntUniform {
  readonly name: string;
  readonly value: number;
}

/**
 * One dispatch of `threads` invocations, each calling the user code's `main(index)`; the output
 * is a flat float32 tensor of `outputSize` elements that the code fills itself.
 */
export interface FlatProgramSpec {
  /** Must identify the generated WGSL: tfjs caches pipelines under it (plus input ranks/dtypes). */
  readonly key: string;
  /** Storage arrays in binding order; `components` 4 binds a float32 tensor as vec4<f32>. */
  readonly inputs: readonly (readonly [name: string, tensor: tf.Tensor, components?: 1 | 4])[];
  readonly uniforms: readonly IntUniform[];
  readonly threads: number;
  readonly outputSize: number;
  /** WGSL defining `fn main(index : i32)`. */
  readonly code: string;
}

export function webgpuBackend(): WebGPUBackend {
  if (tf.getBackend() !== 'webgpu') {
    throw new Error(`the WGSL kernels need the tfjs 'webgpu' backend, but the active backend is '${tf.getBackend()}'`);
  }
  return tf.backend() as WebGPUBackend;
}

/** True on CPU implementations of WebGPU, where parallel work beyond the core count only costs. */
export function isSoftwareGpu(backend: WebGPUBackend): boolean {
  // AdapterInfo's fields are private in the typings but plain properties at run time.
  const info = backend.adapterInfo as unknown as { vendor?: string; architecture?: string };
  return /swiftshader|llvmpipe|lavapipe/i.test(`${info.architecture ?? ''} ${info.vendor ?? ''}`);
}

export function runFlatProgram(spec: FlatProgramSpec): tf.Tensor1D {
  const backend = webgpuBackend();
  const program: WebGPUProgram = {
    variableNames: spec.inputs.map(([name]) => name),
    variableComponents: spec.inputs.map(([, , components]) => components ?? 1),
    outputShape: [spec.outputSize],
    workgroupSize: [WORKGROUP, 1, 1],
    dispatchLayout: { x: [0] },
    // runWebGPUProgram folds a dispatch wider than the device limit into 2-D; the prelude's
    // getGlobalIndex() then still yields the flat invocation index passed to main.
    dispatch: [Math.ceil(spec.threads / WORKGROUP), 1, 1],
    shaderKey: spec.key,
    uniforms: spec.uniforms.map((u) => `${u.name} : i32,`).join(' '),
    getUserCode: () => spec.code,
  };
  const info = backend.runWebGPUProgram(
    program,
    spec.inputs.map(([, t]) => t),
    'float32',
    spec.uniforms.map((u) => ({ type: 'int32', data: [u.value] })),
  );
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor1D;
}

/** The parts of WebGPUBackend that copying between tensors needs (private in the typings). */
interface BackendInternals {
  readonly tensorMap: { get(dataId: object): { resource: GPUBuffer | null } };
  uploadToGPU(dataId: object): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  readonly commandEncoder: GPUCommandEncoder;
  readonly commandQueueOwnedIds: WeakSet<object>;
}

export interface FlatPart {
  /** Elements from the start of the packed tensor. */
  readonly offset: number;
  readonly shape: readonly number[];
}

/**
 * Cuts a packed program output into tensors with buffer-to-buffer copies. A tfjs program has a
 * single output, so a kernel with several writes them into one buffer; tf.slice would run a
 * shader per element (on SwiftShader 0.7 s for two [2048, 1536] slices), a copy is a memcpy/DMA.
 */
export function splitFlat(packed: tf.Tensor, parts: readonly FlatPart[]): tf.Tensor[] {
  const backend = webgpuBackend() as unknown as BackendInternals;
  backend.uploadToGPU(packed.dataId);
  const source = backend.tensorMap.get(packed.dataId).resource;
  if (!source) throw new Error('splitFlat: the packed tensor has no GPU buffer');
  return parts.map(({ offset, shape }) => {
    const info = (backend as unknown as WebGPUBackend).makeTensorInfo([...shape], 'float32');
    backend.uploadToGPU(info.dataId);
    const target = backend.tensorMap.get(info.dataId).resource!;
    backend.ensureCommandEncoderReady();
    backend.endComputePassEncoder();
    backend.commandEncoder.copyBufferToBuffer(source, offset * 4, target, 0, sizeOf(shape) * 4);
    // Like runWebGPUProgram: a tensor disposed before the queue is submitted is freed after it.
    backend.commandQueueOwnedIds.add(packed.dataId);
    backend.commandQueueOwnedIds.add(info.dataId);
    return tf.engine().makeTensorFromTensorInfo(info);
  });
}

/**
 * Exponentials that can neither overflow nor meet an argument a software exp mishandles:
 * Δ·A is ≤ 0 for every real model, and below −80 the factor (e^−80 ≈ 2e−35) is zero for any
 * tolerance; A itself is kept finite so Δ·A is never 0·∞ when A_log is huge.
 */
export const SAFE_MATH_WGSL = /* wgsl */ `
fn finiteA(a : f32) -> f32 { return max(a, -1.0e30); }
fn decayOf(x : f32) -> f32 { return exp(max(x, -80.0)); }
fn siluOf(v : f32) -> f32 { return v / (1.0 + exp(clamp(-v, -80.0, 80.0))); }
`;
