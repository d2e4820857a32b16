/// <reference types="@webgpu/types" />
import { nativeForward } from '../../src/engine/webgpu/forward';
import { createForwardPlan, type ForwardPlanOptions } from '../../src/engine/webgpu/plan';
import type { GpuWeights } from '../../src/engine/webgpu/weights';
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

/** One forward on a plan made for it and destroyed after it: a test case that runs each plan once. */
export async function forwardOnce(weights: GpuWeights, options: ForwardPlanOptions, ids: ArrayLike<number>): ReturnType<typeof nativeForward> {
  const plan = await createForwardPlan(weights, options);
  try {
    return await nativeForward(plan, ids);
  } finally {
    plan.destroy();
  }
}
