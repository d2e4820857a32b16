/**
 * Webview entry (bundled to dist/webview.js): connects the panel to the host through the typed
 * protocol. The host sends settings, the model's weights (once per model), runs and dumps; the
 * webview computes on the best tfjs backend, shows the result, and answers with per-token
 * summaries for the editor decorations.
 */
import { DEFAULT_CAUSAL_EPSILON, FULL_RESOLUTION_TOKENS, PROTOCOL_VERSION, Rpc, toTensorMessage, toWireError, type BackendInfo, type HostApi, type RunParams, type RunSummary, type ViewSettings, type WebviewApi } from '../src/protocol';
import { App } from './app';
import { backendLabel } from './backend';
import { ComputeSession } from './compute';
import { fromDump, fromRun } from './inspection';
import { PanelData } from './panelData';
import { InterventionCompute, type CurrentRun } from './interventions/compute';
import { inputsFromMessages } from './interventions/inputs';
import { parseIntervention } from '../src/engine/interventions';
import { MambaScopeError } from '../src/engine/errors';
import { LongSession } from './long/session';
import { tokenSummary } from './tokenSummary';

interface VsCodeApi {
  postMessage(message: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const rpc = new Rpc<WebviewApi, HostApi>(
  'webview',
  (m) => vscode.postMessage(m),
  (listener) => {
    const onMessage = (e: MessageEvent) => listener(e.data);
    window.addEventListener('message', onMessage);
    return { dispose: () => window.removeEventListener('message', onMessage) };
  },
);

const reportError = (view: string, e: unknown) => rpc.notify('error', { view, error: toWireError(e, `webview ${view}`) });
window.addEventListener('error', (e) => reportError('panel', e.error ?? e.message));
window.addEventListener('unhandledrejection', (e) => reportError('panel', e.reason));

let settings: ViewSettings = { backend: 'auto', colormap: 'viridis', metric: 'delta', defaultLayer: 0, resetThreshold: 0.05 };
const session = new ComputeSession(
  settings.wasmPath,
  (modelId) => rpc.notify('modelReleased', { modelId }),
  (modelId, name) => rpc.request('readWeight', { modelId, name }),
);
/** The host's last run request and its forward time: what the interventions rerun. */
let lastRun: { params: RunParams; forwardMs: number } | null = null;
const compute: InterventionCompute = new InterventionCompute(
  session,
  (): CurrentRun | null => {
    const data = app.current;
    return lastRun && data?.inspection.id === lastRun.params.runId ? { ...lastRun, data } : null;
  },
  async (interventions, run) => {
    const messages = await rpc.request('readInterventionInputs', { modelId: run.params.modelId, tokens: run.data.inspection.length, interventions });
    return inputsFromMessages(interventions, messages);
  },
);

const app: App = new App(document.getElementById('app') ?? document.body, {
  onViewError: reportError,
  save: async (data) => {
    const { savedTo } = await rpc.request('saveExport', data);
    app.setStatus(savedTo ? `Saved ${savedTo}` : 'Export cancelled');
  },
  annotate: (edit) => rpc.notify('annotationEdit', edit),
  compute,
  pickInterventionFile: (kind, dModel) => rpc.request('pickInterventionFile', { kind, dModel }),
});

let backend: BackendInfo | null = null;

/** Samples over FULL_RESOLUTION_TOKENS: the chunked run, the overview and the window in view. */
const long = new LongSession(session, app, { notifyWindow: (summary) => rpc.notify('windowSummary', summary), defaultLayer: () => settings.defaultLayer });

function showBackend(info: BackendInfo): void {
  if (info === backend) return;
  backend = info;
  app.setBackendLabel(backendLabel(info));
  rpc.notify('backendInfo', info);
}

async function selectBackend(): Promise<void> {
  try {
    showBackend(await session.ensureBackend(settings.backend));
  } catch (e) {
    app.setBackendLabel(`no backend: ${e instanceof Error ? e.message : String(e)}`, true);
    reportError('backend', e);
  }
}

rpc.on('setSettings', (s) => {
  const backendChanged = s.backend !== settings.backend || s.wasmPath !== settings.wasmPath || !backend;
  settings = s;
  session.setWasmPath(s.wasmPath);
  app.causalEpsilon = s.causalEpsilon ?? DEFAULT_CAUSAL_EPSILON;
  app.store.set({ colormap: s.colormap, metric: s.metric, threshold: s.resetThreshold });
  if (backendChanged) void selectBackend();
});

rpc.handle('loadModel', async (params, ctx) => {
  app.setStatus(`Loading ${params.name}…`);
  const { backend: info, uploadMs } = await session.loadModel(params, settings.backend, ctx);
  showBackend(info);
  app.setStatus(`${params.name} loaded (${Math.round(uploadMs)} ms upload)`);
  return { backend: info, uploadMs };
});

rpc.handle('run', async (params, ctx) => {
  // The interventions' clean logits (up to 412 MB) are a cache of the last inspection: not kept through the next one's forward.
  compute.forget();
  long.stop();
  if (params.ids.byteLength / Int32Array.BYTES_PER_ELEMENT > FULL_RESOLUTION_TOKENS) {
    lastRun = null;
    // What the old inspection kept goes before the long run starts: the panel shows the new tokens meanwhile.
    app.show(new PanelData(fromRun(params, { layers: [] }), session.model), settings.defaultLayer);
    app.setStatus(`Running ${params.sampleName} in chunks…`);
    const summary = await long.start(params, app.store.get().threshold, ctx);
    showBackend(summary.backend);
    return summary;
  }
  const { bytes } = session.plan(params);
  const shown = app.current;
  if (shown && shown.keptBytes + bytes > params.settings.memoryLimitMB * 1e6) {
    // Both runs at once would pass the limit: the panel shows the new tokens while the old internals go.
    app.show(new PanelData(fromRun(params, { layers: [] }), session.model), settings.defaultLayer);
  }
  app.setStatus(`Running ${params.sampleName}…`);
  const { result, backend: info, forwardMs, note } = await session.run(params, ctx);
  lastRun = { params, forwardMs };
  showBackend(info);
  const data = new PanelData(fromRun(params, result), session.model);
  app.show(data, settings.defaultLayer);
  const state = app.store.get();
  await data.computeSummaries(state.threshold, state.layer, (done, total) => ctx.progress({ stage: 'layer summaries', done, total }), () => ctx.signal.aborted);
  app.setStatus(`${params.sampleName}: ${data.inspection.length} tokens in ${Math.round(forwardMs)} ms on ${info.backend}${note ? `; ${note}` : ''}`);
  return { ...runSummary(data, params.runId, info, forwardMs), ...(note ? { note } : {}) };
});

rpc.handle('showDump', async (params) => {
  const data = new PanelData(await fromDump(params, (name) => rpc.request('readTensor', { name })), session.model);
  app.show(data, settings.defaultLayer);
  app.setStatus(`${params.name}: ${data.inspection.index.size} tensors`);
  return null;
});

rpc.handle('showComparison', async (params) => {
  const data = new PanelData(await fromDump(params.dump, (name) => rpc.request('readTensor', { name })), session.model);
  app.showComparison(data, params, settings.defaultLayer);
  app.setStatus(`${params.dump.name} vs ${params.b}: ${params.tensors.length} tensors compared`);
  return null;
});

rpc.handle('exportView', (req) => app.exportBytes(req.kind, req.view));

rpc.handle('intervene', async ({ runId, interventions }, ctx) => {
  if (app.current?.inspection.id !== runId) throw new MambaScopeError('bad-input', 'intervene', `run ${runId} is not the inspection the panel shows`);
  const outcome = await app.interventions.intervene(interventions.map(parseIntervention), undefined, ctx);
  if (!outcome) return null;
  const kl = Float32Array.from(outcome.effect.kl);
  return { runId, specs: outcome.specs, firstChanged: outcome.effect.firstChanged, kl: toTensorMessage({ shape: [kl.length], data: kl }) };
});

rpc.handle('describe', () => app.describe({ modelId: session.model?.id ?? null, backend: backend?.backend ?? null, engine: session.engine }, session.memory()));

rpc.on('selectToken', ({ runId, token, layer }) => {
  if (app.current?.long) {
    if (app.runId === runId) long.select(token, layer);
    return;
  }
  const data = app.current;
  if (!data || data.inspection.id !== runId || token < 0 || token >= data.inspection.length) return;
  app.store.set(layer !== undefined && data.layerNumbers.includes(layer) ? { token, layer } : { token });
});

rpc.on('setAnnotations', ({ runId, annotations, suggestions }) => app.setAnnotations(runId, annotations, suggestions));

app.store.subscribe((s, changed) => {
  const runId = app.runId;
  if (!runId) return;
  // The host counts tokens in the whole sample: a long run's window starts at its offset.
  const token = s.token === null ? null : s.token + (app.current?.inspection.offset ?? 0);
  if (changed.has('layer') || changed.has('token') || changed.has('channel')) rpc.notify('selectionChanged', { runId, layer: s.layer, token, channel: s.channel });
  if (changed.has('metric') || changed.has('layer')) rpc.notify('metricChanged', { metric: s.metric, layer: s.layer });
});

function runSummary(data: PanelData, runId: string, info: BackendInfo, forwardMs: number): RunSummary {
  return { ...tokenSummary(data, runId), backend: info, forwardMs };
}

rpc.notify('ready', { protocolVersion: PROTOCOL_VERSION });
