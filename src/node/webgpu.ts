/**
 * WebGPU in Node: Dawn from the npm `webgpu` package, for the native engine (src/engine/webgpu),
 * so the CLI (`inspect --backend webgpu`), the tests and the benchmarks run the same WGSL kernels
 * as the webview.
 *
 * Without a GPU, Dawn needs a Vulkan driver: Chromium ships SwiftShader (a CPU Vulkan driver) with
 * its ICD json, and the Vulkan loader (Debian's libvulkan1) is told about it through
 * VK_ADD_DRIVER_FILES, which adds it beside any real driver instead of hiding them
 * (a machine with a GPU still gets the GPU: the adapter is asked for high performance).
 */
import { existsSync } from 'node:fs';
import { requestComputeDevice } from '../engine/webgpu/device';
import { gpuSettled } from '../engine/webgpu/settle';

/** Where Debian/Ubuntu/Fedora Chromium packages put SwiftShader's Vulkan ICD. */
const SWIFTSHADER_ICDS = [
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json',
  '/usr/lib64/chromium-browser/vk_swiftshader_icd.json',
];

export interface DawnAdapterInfo {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** A CPU implementation (SwiftShader, lavapipe): correct, but no speed figures mean much. */
  readonly software: boolean;
}

export interface DawnOptions {
  /**
   * GPU timestamps at full resolution. Dawn rounds them to ~65 µs by default (a browser's
   * timing side-channel defence), which hides the time of any kernel shorter than that: the
   * benchmarks turn it off.
   */
  readonly preciseTimestamps?: boolean;
}

export interface DawnDevice {
  readonly device: GPUDevice;
  readonly gpu: GPU;
  readonly adapterInfo: GPUAdapterInfo;
  readonly info: DawnAdapterInfo;
}

/**
 * The Dawn instances whose devices are alive. dawn.node frees an instance, and with it the
 * native state its devices still use, once the instance's JS object is collected: a caller that
 * keeps only the device then crashes in a later, garbage-collecting call (SIGSEGV, or
 * "std::system_error: Invalid argument" from a freed mutex) in pipeline or shader creation.
 * A device keeps its instance here.
 */
const liveInstances = new Set<GPU>();

/**
 * A raw Dawn GPUDevice (the native WebGPU forward drives it directly), with WebGPU's globals
 * (GPUBufferUsage, GPUMapMode, …) defined as in a browser. Throws when no adapter exists.
 */
export async function createDawnDevice(options: DawnOptions = {}): Promise<DawnDevice> {
  offerSwiftShader();
  let dawn: typeof import('webgpu');
  try {
    // require, not import(): the CLI and extension bundles are CommonJS, and Node 20 loads this
    // ES module through require; a dynamic import() would not resolve from a bundled file.
    dawn = require('webgpu') as typeof import('webgpu');
  } catch (e) {
    throw new Error(`WebGPU in Node needs the optional npm package "webgpu" (Dawn): ${(e as Error).message}`);
  }
  // The native forward reads GPUBufferUsage, GPUMapMode, … as globals, as in a browser.
  for (const [name, value] of Object.entries(dawn.globals)) {
    if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  }
  const gpu = dawn.create(options.preciseTimestamps ? ['disable-dawn-features=timestamp_quantization'] : []);
  const adapter = await gpuSettled(gpu.requestAdapter({ powerPreference: 'high-performance' }));
  if (!adapter) {
    throw new Error(
      'Dawn found no WebGPU adapter: install a Vulkan loader (apt: libvulkan1) and either a GPU Vulkan driver ' +
        'or Chromium, whose SwiftShader is a CPU Vulkan driver (apt: chromium); or point VK_DRIVER_FILES at an ICD json',
    );
  }
  const device = await gpuSettled(requestComputeDevice(adapter));
  liveInstances.add(gpu);
  void device.lost.then(() => liveInstances.delete(gpu));
  const info = adapter.info;
  return {
    device,
    gpu,
    adapterInfo: info,
    info: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, software: isSoftwareAdapter(info) },
  };
}

export function isSoftwareAdapter(info: { architecture: string; vendor: string }): boolean {
  return /swiftshader|llvmpipe|lavapipe/i.test(`${info.architecture} ${info.vendor}`);
}

/** Adds Chromium's SwiftShader to the Vulkan drivers unless the user chose drivers explicitly. */
function offerSwiftShader(): void {
  const env = process.env;
  if (env.VK_ICD_FILENAMES || env.VK_DRIVER_FILES || env.VK_ADD_DRIVER_FILES) return;
  const icd = SWIFTSHADER_ICDS.find((p) => existsSync(p));
  if (icd) env.VK_ADD_DRIVER_FILES = icd;
}
