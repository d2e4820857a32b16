/**
 * The extension host, faked inside the test page: acquireVsCodeApi() for the webview, and the
 * host side of the real protocol Rpc. The Node test drives it through window.fakeHost: it posts
 * messages built in Node (fetched as packed bytes from the test server), records what the
 * webview notifies, and keeps what it asked to save.
 */
import { randomMamba1Checkpoint } from '../../../bench/randomModel';
import type { Mamba1Config } from '../../../src/engine/model/config';
import { describeIntervention } from '../../../src/engine/interventions';
import { Rpc, toTensorMessage, type ExportData, type HostApi, type NamedTensors, type WebviewApi } from '../../../src/protocol';
import { joinMessage } from '../wire';

type Listener = (data: unknown) => void;
let toHost: Listener = () => undefined;

/** The ArrayBuffers inside a message, each once (postMessage refuses a repeated transfer). */
function buffersIn(x: unknown, out = new Set<ArrayBuffer>()): ArrayBuffer[] {
  if (x instanceof ArrayBuffer) out.add(x);
  else if (x && typeof x === 'object') for (const v of Object.values(x)) buffersIn(v, out);
  return [...out];
}

const rpc = new Rpc<HostApi, WebviewApi>(
  'host',
  // The webview listens for 'message' events on its window, as in VS Code; the buffers are
  // transferred, so the page holds one copy of a message, as a VS Code webview does.
  (m) => window.postMessage(m, '*', buffersIn(m)),
  (l) => {
    toHost = l;
  },
);

(window as unknown as { acquireVsCodeApi: () => unknown }).acquireVsCodeApi = () => ({
  // Structured clone, as a real postMessage would (the webview keeps no reference to what it sent).
  postMessage: (m: unknown) => setTimeout(() => toHost(structuredClone(m)), 0),
  getState: () => undefined,
  setState: () => undefined,
});

const notifications: { method: string; params: unknown }[] = [];
for (const method of ['ready', 'backendInfo', 'selectionChanged', 'metricChanged', 'windowSummary', 'annotationEdit', 'modelReleased', 'error'] as const) {
  rpc.on(method, (params) => notifications.push({ method, params }));
}
const saved: ExportData[] = [];
rpc.handle('saveExport', (data) => {
  saved.push(data);
  return { savedTo: `memory:${data.suggestedName}` };
});
const dumpTensors = new Map<string, unknown>();
rpc.handle('readTensor', ({ name }) => {
  const t = dumpTensors.get(name);
  if (!t) throw new Error(`the fake host has no tensor ${name}`);
  return t as never;
});
/**
 * A streamed model's weights: from the offered tensors, else from the test server (which reads
 * them from a checkpoint on disk for the memory benchmark). Each request is counted.
 */
const weightReads: string[] = [];
rpc.handle('readWeight', async ({ name }) => {
  weightReads.push(name);
  const t = dumpTensors.get(name) as { buffer: ArrayBuffer } | undefined;
  // A copy each time, as the host reads the checkpoint anew: the reply's buffer is transferred away.
  if (t) return { ...t, buffer: t.buffer.slice(0) } as never;
  const url = await (await fetchOk(`/weight/${encodeURIComponent(name)}`)).text();
  return (await fetchMessage(url)) as never;
});

/**
 * The interventions' files, as the test set them up in Node with the host's own reader
 * (messages.ts: interventionInputsMessage): what the file picker answers, and each
 * intervention's input, by its one-line spec.
 */
let picked: { file: string; key?: string } | null = null;
const interventionInputs = new Map<string, unknown>();
rpc.handle('pickInterventionFile', () => picked);
rpc.handle('readInterventionInputs', ({ interventions }) =>
  interventions.map((i) => {
    const spec = describeIntervention(i);
    if (!interventionInputs.has(spec)) throw new Error(`the fake host has no input for "${spec}"`);
    return interventionInputs.get(spec) as never;
  }),
);

async function fetchOk(url: string): Promise<Response> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r;
}

async function fetchMessage(url: string): Promise<unknown> {
  return joinMessage(await (await fetchOk(url)).text(), async (i) => (await fetchOk(`${url}/${i}`)).arrayBuffer());
}

/** A reply made JSON-friendly for page.evaluate: TensorMessage buffers become `values`, other ArrayBuffers base64. */
function plain(x: unknown): unknown {
  if (x instanceof ArrayBuffer) {
    const bytes = new Uint8Array(x);
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  }
  if (Array.isArray(x)) return x.map(plain);
  if (x && typeof x === 'object') {
    const o = x as Record<string, unknown>;
    if (o.buffer instanceof ArrayBuffer && typeof o.dtype === 'string') {
      const { buffer, ...rest } = o;
      return { ...rest, values: Array.from(o.dtype === 'int32' ? new Int32Array(buffer) : new Float32Array(buffer)) };
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, plain(v)]));
  }
  return x;
}

const fakeHost = {
  notifications,
  saved,
  /** Sends a request whose params the test server holds at `url`; resolves with the reply (ArrayBuffers summarised). */
  async request(method: keyof WebviewApi['requests'], url: string | null, params?: unknown): Promise<unknown> {
    const p = url ? await fetchMessage(url) : params;
    return rpc.request(method, p as never);
  },
  async requestPlain(method: keyof WebviewApi['requests'], url: string | null): Promise<unknown> {
    return plain(await fakeHost.request(method, url));
  },
  notify(method: keyof WebviewApi['notifications'], params: unknown): void {
    rpc.notify(method, params as never);
  },
  /**
   * For the memory benchmark: a random-weight Mamba-1 built here in the page and sent as a host
   * sends it (each buffer transferred once), so no fetch or copy of the test harness is in the
   * page's memory when it is measured.
   */
  async loadRandomModel(modelId: string, config: Mamba1Config): Promise<unknown> {
    const tensors: NamedTensors = {};
    for (const [name, t] of randomMamba1Checkpoint(config)) tensors[name] = toTensorMessage(t);
    const vocab = Array.from({ length: config.vocabSize }, (_, i) => `t${i}`);
    return plain(await rpc.request('loadModel', { modelId, name: modelId, config, tensors, vocab }));
  },
  weightReads,
  /** Tensors the fake host serves through readTensor (dumps sent without their tensors) and readWeight. */
  async offerTensors(url: string): Promise<void> {
    const m = (await fetchMessage(url)) as Record<string, unknown>;
    for (const [k, v] of Object.entries(m)) dumpTensors.set(k, v);
  },
  /** What the file picker answers next, and the inputs of the specs (a message the test server holds at `url`: spec → input). */
  async offerInterventionFiles(pick: { file: string; key?: string } | null, url: string): Promise<void> {
    picked = pick;
    const m = (await fetchMessage(url)) as Record<string, unknown>;
    for (const [spec, input] of Object.entries(m)) interventionInputs.set(spec, input);
  },
  rpc,
};
(window as unknown as { fakeHost: typeof fakeHost }).fakeHost = fakeHost;
export type FakeHost = typeof fakeHost;
