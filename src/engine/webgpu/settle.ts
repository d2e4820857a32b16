/**
 * Awaits WebGPU work (mapAsync, popErrorScope, requestDevice) with the event loop held open.
 * dawn.node's pending promises do not keep Node's event loop alive, so a caller with nothing
 * else scheduled (a script, the CLI) would exit silently, rc 0, in the middle of the await. A
 * timer keeps it alive until the promise settles; in a browser it is merely an idle timer.
 */
export async function gpuSettled<T>(work: Promise<T>): Promise<T> {
  const hold = setInterval(() => {}, 1000);
  try {
    return await work;
  } finally {
    clearInterval(hold);
  }
}
