/**
 * The WGSL kernels, and their registration as the scan used by the tfjs forward on 'webgpu'
 * (../tfjs/scan.ts picks registered kernels over the tfjs-ops scan by backend name).
 */
import { registerScanKernels } from '../tfjs/scan';
import { webgpuConvSilu } from './convSilu';
import { webgpuHeadScan, webgpuScan } from './scan';

export { webgpuConvSilu } from './convSilu';
export { webgpuHeadScan, webgpuHeadScanChunked, webgpuScan, webgpuScanChunked, webgpuScanFused } from './scan';

/** Call once wherever the 'webgpu' backend is set up (the webview, src/node/webgpu.ts). */
export function registerWebGpuKernels(): void {
  registerScanKernels('webgpu', { scan: webgpuScan, headScan: webgpuHeadScan, convSilu: webgpuConvSilu });
}
