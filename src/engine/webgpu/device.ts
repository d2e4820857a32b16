/**
 * The GPUDevice the native forward runs on, from an adapter (Chromium's navigator.gpu, or Dawn in
 * Node): the adapter's own limits rather than WebGPU's defaults, which cap a storage binding at
 * 128 MiB (mamba-130m's lm_head alone is 154 MB), and GPU timestamps where the adapter has them
 * (the benchmarks time each kernel with them).
 */
export function requestComputeDevice(adapter: GPUAdapter): Promise<GPUDevice> {
  const limits = adapter.limits;
  return adapter.requestDevice({
    requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
    requiredLimits: {
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
    },
  });
}
