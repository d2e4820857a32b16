/**
 * Runs the implicit attention's channel mean in a Web Worker, so a 1024-token map over 1536
 * channels (tens of seconds) never holds the panel's UI thread. Cancelling terminates the worker
 * at once. A host whose Content-Security-Policy forbids blob: workers gets the same computation
 * on the UI thread, yielding between channels.
 */
import workerSource from 'attention-worker-source';
import { hiddenAttentionAsync } from '../../src/engine/analysis/attention';
import { CancelledError } from '../../src/engine/errors';
import type { Tensor } from '../../src/engine/tensor';

export interface AttentionJob {
  readonly delta: Tensor;
  readonly B: Tensor;
  readonly C: Tensor;
  readonly A: Tensor;
  readonly groups: number;
}

export type AttentionReply =
  | { readonly kind: 'progress'; readonly done: number; readonly total: number }
  | { readonly kind: 'done'; readonly shape: readonly number[]; readonly data: Float64Array }
  | { readonly kind: 'error'; readonly message: string };

/** How often a cancellation is looked for between the worker's progress reports. */
const CANCEL_POLL_MS = 50;

let workerUrl: string | null = null;

function startWorker(): Worker | null {
  try {
    workerUrl ??= URL.createObjectURL(new Blob([workerSource], { type: 'text/javascript' }));
    return new Worker(workerUrl);
  } catch {
    return null; // CSP without worker-src blob:
  }
}

/** The [L, L] channel mean; `stale()` true stops it with a CancelledError. */
export function meanAttention(job: AttentionJob, stale: () => boolean, onProgress?: (done: number, total: number) => void): Promise<Tensor<Float64Array>> {
  const worker = startWorker();
  if (!worker) return hiddenAttentionAsync(job.delta, job.B, job.C, job.A, job.groups, { shouldStop: stale, onProgress });
  return new Promise((resolve, reject) => {
    const finish = () => {
      clearInterval(poll);
      worker.terminate();
    };
    const poll = setInterval(() => {
      if (!stale()) return;
      finish();
      reject(new CancelledError('hidden attention'));
    }, CANCEL_POLL_MS);
    worker.onmessage = ({ data: m }: MessageEvent<AttentionReply>) => {
      if (m.kind === 'progress') return onProgress?.(m.done, m.total);
      finish();
      if (m.kind === 'done') resolve({ shape: m.shape, data: m.data });
      else reject(new Error(m.message));
    };
    worker.onerror = (e) => {
      finish();
      reject(new Error(`the attention worker failed: ${e.message}`));
    };
    // Structured clone: the worker gets copies (a few MB at 1024 tokens), the panel keeps its data.
    worker.postMessage(job);
  });
}
