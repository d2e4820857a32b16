/** The attention worker's bundled code, embedded by build.mjs (see attentionWorker.ts). */
declare module 'attention-worker-source' {
  const source: string;
  export default source;
}
