/// <reference types="@webgpu/types" />
/**
 * Backend selection. 'webgpu' is the native WebGPU engine (src/engine/webgpu) on a GPUDevice of
 * its own; 'webgl', 'wasm' and 'cpu' are TensorFlow.js backends. 'auto' tries WebGPU, then WebGL,
 * WASM and the plain CPU backend, and records why each one that was skipped failed, so the header
 * can say "WASM — WebGPU not used: no adapter". Each candidate must really compute (a tiny
 * computation read back) before it is accepted: some broken backends fail only on first use.
 * Only tfjs-core and three backends are imported, never the whole @tensorflow/tfjs bundle.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { requestComputeDevice } from '../src/engine/webgpu/device';
import { KernelCache, record } from '../src/engine/webgpu/kernel';
import { combineDispatch } from '../src/engine/webgpu/elementwise';
import { BACKENDS, type Backend, type BackendInfo, type BackendPreference } from '../src/protocol';

/** The chosen backend; for 'webgpu', the device the native engine runs on. */
export interface SelectedBackend {
  readonly info: BackendInfo;
  readonly device?: GPUDevice;
}

/** requestAdapter and backend initialisation can hang on broken drivers; give up after this. */
const INIT_TIMEOUT_MS = 20_000;

type Adapter = NonNullable<BackendInfo['adapter']>;

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} did not answer within ${INIT_TIMEOUT_MS / 1000} s`)), INIT_TIMEOUT_MS))]);
}

/** The WebGPU adapter the page would get and its description, or the reason there is none. */
async function webgpuAdapter(): Promise<{ adapter: GPUAdapter; info: Adapter }> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) throw new Error('navigator.gpu is missing (this browser has no WebGPU)');
  const adapter = await withTimeout(gpu.requestAdapter({ powerPreference: 'high-performance' }), 'requestAdapter');
  if (!adapter) throw new Error('requestAdapter() returned no adapter (no GPU, or Chromium without --enable-unsafe-webgpu)');
  // adapter.info's fields are getters: JSON.stringify(info) gives {}, so copy them.
  const info = adapter.info;
  const fallback = (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ?? (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  return { adapter, info: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, ...(fallback === undefined ? {} : { isFallbackAdapter: fallback }) } };
}

/** The native engine's device, checked by computing 1 + 1 and 2 + 1 on it. */
async function webgpuDevice(adapter: GPUAdapter): Promise<GPUDevice> {
  const device = await withTimeout(requestComputeDevice(adapter), 'requestDevice');
  const input = (values: number[]) => {
    const b = device.createBuffer({ size: 4 * values.length, usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
    new Float32Array(b.getMappedRange()).set(values);
    b.unmap();
    return b;
  };
  const result = device.createBuffer({ size: 8, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const cache = new KernelCache(device);
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  record(pass, [combineDispatch(cache, 'probe', 2, { buffer: input([1, 2]) }, 1, { buffer: result }, { range: { buffer: input([1, 1]) }, beta: 1 })]);
  pass.end();
  encoder.copyBufferToBuffer(result, 0, read, 0, 8);
  device.queue.submit([encoder.finish()]);
  await withTimeout(read.mapAsync(GPUMapMode.READ), 'the WebGPU probe');
  const values = [...new Float32Array(read.getMappedRange())];
  read.unmap();
  if (values[0] !== 2 || values[1] !== 3) {
    device.destroy();
    throw new Error(`the WebGPU device computed 1+1 = ${values[0]}`);
  }
  return device;
}

/** The WebGL renderer string ("ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device …))"), if any. */
function webglRenderer(): string {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return '';
  const ext = gl.getExtension('WEBGL_debug_renderer_info');
  return String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER) ?? '');
}

const SOFTWARE = /swiftshader|llvmpipe|lavapipe|software/i;

/** A CPU implementation of WebGPU (SwiftShader, llvmpipe): the native engine then runs its kernels the CPU's way. */
export function isSoftwareAdapter(a: Adapter): boolean {
  return a.isFallbackAdapter === true || SOFTWARE.test(`${a.architecture} ${a.description} ${a.vendor}`);
}

/**
 * Why 'auto' passes over a GPU backend that is really the CPU: on a software adapter
 * (SwiftShader, llvmpipe) WebGPU and WebGL emulate the GPU shader by shader, and the wasm backend
 * (XNNPACK) runs the same model about 20× faster on the same cores. Asked for by name, they run.
 */
async function softwareGpu(name: Backend): Promise<string | null> {
  if (name === 'webgpu') {
    const a = (await webgpuAdapter()).info;
    return isSoftwareAdapter(a) ? `only a software adapter (${a.architecture || a.description || 'fallback'}); wasm is faster on this CPU` : null;
  }
  if (name === 'webgl') {
    const renderer = webglRenderer();
    return SOFTWARE.test(renderer) ? `only a software renderer (${renderer.slice(0, 60)}); wasm is faster on this CPU` : null;
  }
  return null;
}

async function tryBackend(name: Backend, wasmPath: string | undefined): Promise<{ adapter?: Adapter; device?: GPUDevice }> {
  if (name === 'webgpu') {
    const { adapter, info } = await webgpuAdapter();
    return { adapter: info, device: await webgpuDevice(adapter) };
  }
  if (name === 'wasm') {
    if (!wasmPath) throw new Error('the host gave no URL for the .wasm files');
    setWasmPaths(wasmPath.endsWith('/') ? wasmPath : `${wasmPath}/`);
  }
  // setBackend resolves false (no throw) when initialisation fails, and getBackend() may still
  // name the failed backend afterwards: only the return value counts.
  if (!(await withTimeout(tf.setBackend(name), `tfjs ${name} initialisation`))) throw new Error(`tfjs could not initialise the ${name} backend`);
  const probe = tf.tidy(() => tf.add(tf.tensor1d([1, 2]), tf.scalar(1)));
  const values = await probe.data();
  probe.dispose();
  if (values[0] !== 2 || values[1] !== 3) throw new Error(`the ${name} backend computed 1+1 = ${values[0]}`);
  return {};
}

/**
 * Picks the backend: `preference` first ('auto' = webgpu), then the ones after it in
 * webgpu → webgl → wasm → cpu order. 'auto' skips GPU backends that run in software.
 */
export async function selectBackend(preference: BackendPreference, wasmPath?: string): Promise<SelectedBackend> {
  const start = preference === 'auto' ? 0 : BACKENDS.indexOf(preference);
  const fallbacksTried: { backend: Backend; error: string }[] = [];
  for (const name of BACKENDS.slice(start)) {
    try {
      const software = preference === 'auto' ? await softwareGpu(name) : null;
      if (software) {
        fallbacksTried.push({ backend: name, error: software });
        continue;
      }
      const { adapter, device } = await tryBackend(name, wasmPath);
      const reason = fallbacksTried.length === 0 ? (preference === 'auto' ? 'auto: the first choice worked' : 'requested') : `fallback: ${fallbacksTried.map((f) => `${f.backend} failed (${f.error})`).join('; ')}`;
      return { info: { backend: name, reason, fallbacksTried, ...(adapter ? { adapter } : {}) }, ...(device ? { device } : {}) };
    } catch (e) {
      fallbacksTried.push({ backend: name, error: e instanceof Error ? e.message : String(e) });
    }
  }
  throw new Error(`no backend works here: ${fallbacksTried.map((f) => `${f.backend}: ${f.error}`).join('; ')}`);
}

const NAMES: Record<Backend, string> = { webgpu: 'WebGPU', webgl: 'WebGL', wasm: 'WASM', cpu: 'CPU' };

/** "WebGPU (SwiftShader)" or "WASM — WebGPU not used: <reason>". */
export function backendLabel(info: BackendInfo): string {
  const a = info.adapter;
  const adapter = a ? ` (${a.architecture === 'swiftshader' ? 'SwiftShader' : [a.vendor, a.architecture || a.device].filter(Boolean).join(' ') || 'unknown adapter'})` : '';
  const failed = info.fallbacksTried.map((f) => `${NAMES[f.backend]} not used: ${f.error}`).join('; ');
  return `${NAMES[info.backend]}${adapter}${failed ? ` — ${failed}` : ''}`;
}
