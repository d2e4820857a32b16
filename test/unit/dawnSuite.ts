/// <reference types="@webgpu/types" />
import { createDawnDevice } from '../../src/node/webgpu';

/**
 * A mocha suite's Dawn device (the GPU if the machine has one, else SwiftShader): made before the
 * suite's tests and handed to `use` with whether it is a software adapter, destroyed after them.
 */
export function withDawn(use: (dawn: { readonly device: GPUDevice; readonly software: boolean }) => void): void {
  let device: GPUDevice | undefined;
  before(async () => {
    const dawn = await createDawnDevice();
    device = dawn.device;
    use({ device, software: dawn.info.software });
  });
  after(() => device?.destroy());
}
