/**
 * The implicit attention's channel mean, off the panel's UI thread. build.mjs bundles this file
 * on its own and embeds it in the webview bundle as text; attentionClient starts it from a
 * blob: URL. One job per worker: the panel cancels by terminating it.
 */
import { hiddenAttentionAsync } from '../../src/engine/analysis/attention';
import type { AttentionJob, AttentionReply } from './attentionClient';

const scope = self as unknown as { onmessage: (e: MessageEvent<AttentionJob>) => void; postMessage(m: AttentionReply, transfer?: Transferable[]): void };

scope.onmessage = async ({ data: { delta, B, C, A, groups } }) => {
  try {
    // Nobody waits on this thread: report every 32 channels, not every 8.
    const t = await hiddenAttentionAsync(delta, B, C, A, groups, { channelsPerYield: 32, onProgress: (done, total) => scope.postMessage({ kind: 'progress', done, total }) });
    scope.postMessage({ kind: 'done', shape: t.shape, data: t.data }, [t.data.buffer]);
  } catch (e) {
    scope.postMessage({ kind: 'error', message: e instanceof Error ? e.message : String(e) });
  }
};
