/**
 * Every message between the extension host and the panel webview, typed both ways, plus the small
 * RPC both sides use to send them. One module with no vscode, DOM or node imports, so the host
 * (src/extension) and the webview (webview/) compile the same definitions and cannot drift.
 *
 * Shape of the conversation:
 *   webview → host   notify  ready            (once the panel script runs; host then sends settings + model)
 *   host → webview   request loadModel        (weights ONCE per model, float32 transferable buffers)
 *   host → webview   request run              (ids/tokens/offsets of one sample; reply = per-token summary)
 *   webview → host   notify  backendInfo, selectionChanged, metricChanged, windowSummary, annotationEdit,
 *                            modelReleased, error
 *   webview → host   request saveExport       (the host owns every file write: save dialog + write)
 *   webview → host   request pickInterventionFile, readInterventionInputs
 *                                             (a steer's vector or a patch-state's dump: the host's picker and reader)
 *   host → webview   request exportView       ("Export View…" from the palette: webview returns bytes)
 *   host → webview   request intervene        ("Intervene…" from the palette: the panel runs it as its own view does)
 *   either way       cancel <id>, progress <id>  (handled inside Rpc, see below)
 *
 * Tensors travel as TensorMessage {shape, dtype, buffer: ArrayBuffer}, never as JSON arrays:
 * VS Code's webview.postMessage moves ArrayBuffers out of the JSON payload and transfers them as
 * binary, and the webview's postMessage structured-clones them, so a 5 MB weight costs a copy, not
 * a 50 MB JSON string.
 */
import { CancelledError, MambaScopeError, type ErrorKind } from './engine/errors';
import type { Intervention } from './engine/interventions';
import type { ModelConfig } from './engine/model/config';
import { decodeFloat, floatToF16 } from './engine/formats/dtypes';
import { sizeOf, type Tensor } from './engine/tensor';

/** Bumped on any incompatible change; the host refuses a webview that reports another version. */
export const PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------------------------------------
// Tensors on the wire

/** bfloat16 and float16 carry the bits of a half-precision checkpoint as stored: half the bytes, decoded to float32 where they are used. */
export type WireDtype = 'float32' | 'int32' | 'bfloat16' | 'float16';

const WIRE_BYTES: Readonly<Record<WireDtype, number>> = { float32: 4, int32: 4, bfloat16: 2, float16: 2 };

export interface TensorMessage {
  readonly shape: readonly number[];
  readonly dtype: WireDtype;
  /** Exactly sizeOf(shape) elements of dtype, row-major; a buffer of its own (never a shared one). */
  readonly buffer: ArrayBuffer;
}

export type NamedTensors = Record<string, TensorMessage>;

/**
 * Packs a Float32Array/Int32Array tensor. Copies only when the array is a view into a larger
 * buffer (otherwise the whole underlying buffer, e.g. a full checkpoint read, would travel).
 */
export function toTensorMessage(t: Tensor<Float32Array | Int32Array>): TensorMessage {
  const { data } = t;
  const dtype: WireDtype = data instanceof Float32Array ? 'float32' : 'int32';
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
  const buffer = whole ? (data.buffer as ArrayBuffer) : (data.slice().buffer as ArrayBuffer);
  return { shape: [...t.shape], dtype, buffer };
}

/**
 * Float32 values that came from a half-precision tensor, packed back into its 16-bit form
 * (exactly: every value is one the format holds).
 */
export function toHalfMessage(t: Tensor<Float32Array>, dtype: 'bfloat16' | 'float16'): TensorMessage {
  const bits = new Uint16Array(t.data.length);
  if (dtype === 'bfloat16') {
    const words = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    for (let i = 0; i < bits.length; i++) bits[i] = words[i] >>> 16;
  } else {
    for (let i = 0; i < bits.length; i++) bits[i] = floatToF16(t.data[i]);
  }
  return { shape: [...t.shape], dtype, buffer: bits.buffer };
}

/** Unpacks and checks a TensorMessage (half-precision ones decoded to float32); `name` is used in the error if the sizes disagree. */
export function fromTensorMessage(m: TensorMessage, name: string): Tensor<Float32Array | Int32Array> {
  if (!(m.buffer instanceof ArrayBuffer) || !Array.isArray(m.shape) || !m.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ProtocolError(name, 'is not a tensor message {shape, dtype, buffer}');
  }
  const width = Object.hasOwn(WIRE_BYTES, m.dtype) ? WIRE_BYTES[m.dtype] : undefined;
  if (width === undefined) throw new ProtocolError(name, `has unsupported dtype ${JSON.stringify(m.dtype)}`);
  const count = sizeOf(m.shape);
  if (m.buffer.byteLength !== count * width) {
    throw new ProtocolError(name, `has ${m.buffer.byteLength} bytes but shape [${m.shape.join(', ')}] of ${m.dtype} needs ${count * width}`);
  }
  if (m.dtype === 'int32') return { shape: m.shape, data: new Int32Array(m.buffer) };
  if (m.dtype === 'float32') return { shape: m.shape, data: new Float32Array(m.buffer) };
  return { shape: m.shape, data: decodeFloat(m.dtype === 'bfloat16' ? 'BF16' : 'F16', new Uint8Array(m.buffer), count, Float32Array) };
}

// ---------------------------------------------------------------------------------------------
// Shared vocabulary

export const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type Backend = (typeof BACKENDS)[number];
export type BackendPreference = 'auto' | Backend;

/**
 * Per-token summaries (mean over channels, and over states where there are states) that the token
 * strip and the editor decorations show:
 *   delta  mean_d Δ[t,d]
 *   gate   mean_d silu(z[t,d])                  (output gate)
 *   forget mean_{d,n} exp(Δ[t,d]·A[d,n])        (forget factor; small = near-reset)
 *   write  mean_d |Δ[t,d]·u[t,d]|·‖B[t]‖        (write magnitude)
 */
export const TOKEN_METRICS = ['delta', 'gate', 'forget', 'write'] as const;
export type TokenMetric = (typeof TOKEN_METRICS)[number];

/** The names webview/render/colormaps.ts implements: sequential maps, then diverging ones (for signed values). */
export const COLORMAPS = ['viridis', 'cividis', 'magma', 'RdBu', 'BrBG'] as const;
export type Colormap = (typeof COLORMAPS)[number];

/** The user's settings that the panel needs (from mambaScope.* in VS Code). */
export interface ViewSettings {
  readonly backend: BackendPreference;
  readonly colormap: Colormap;
  readonly metric: TokenMetric;
  /** Layer shown first; clamped by the webview to the model's layers. */
  readonly defaultLayer: number;
  /** Forget factor below which a step counts as near-reset (mean exp(ΔA) < τ). */
  readonly resetThreshold: number;
  /** Webview URL of the folder with tfjs-backend-wasm's .wasm files (asWebviewUri, trailing slash); without it the wasm fallback is skipped. */
  readonly wasmPath?: string;
  /** mambaScope.causalEpsilon: a forgotten token whose ablated write moves the outputs by a mean KL below this (nats) is causally forgotten; default DEFAULT_CAUSAL_EPSILON. */
  readonly causalEpsilon?: number;
}

/**
 * A sample of up to this many tokens keeps every layer's internals (the panel as it always was).
 * A longer one, up to MAX_TOKENS, is a long run: it runs in chunks and keeps per-position
 * summaries, per-block tiles and state checkpoints, and the panel recomputes the internals of a
 * window of at most this many tokens (the one in view) from the nearest checkpoint.
 */
export const FULL_RESOLUTION_TOKENS = 2048;
/** The most tokens mambaScope.maxTokens allows (issue 13: 128k). */
export const MAX_TOKENS = 131_072;

/** The default ε of the causal check, in nats (`mamba-scope forgotten --causal ε` takes it explicitly; its tests use this one). */
export const DEFAULT_CAUSAL_EPSILON = 1e-3;

export interface BackendInfo {
  /** The backend that actually runs. */
  readonly backend: Backend;
  /** Why this one: "requested", "auto: first that worked", or the failure that forced a fallback. */
  readonly reason: string;
  readonly fallbacksTried: readonly { readonly backend: Backend; readonly error: string }[];
  /** WebGPU adapter fields (adapter.info copied field by field; JSON.stringify of it gives {}). */
  readonly adapter?: { readonly vendor: string; readonly architecture: string; readonly device: string; readonly description: string; readonly isFallbackAdapter?: boolean };
}

export interface Progress {
  /** Short phrase shown in the notification: "uploading weights", "layer 2/4". */
  readonly stage: string;
  readonly done: number;
  readonly total: number;
}

// ---------------------------------------------------------------------------------------------
// Payloads

export interface LoadModelParams {
  /** Stable id (the model's path); runs name it, so a reloaded webview can be told to reload weights. */
  readonly modelId: string;
  /** Display name: "mamba1-demo". */
  readonly name: string;
  readonly config: ModelConfig;
  /** Checkpoint tensors by their checkpoint key: float32, or bfloat16/float16 as the checkpoint stores them. */
  readonly tensors: NamedTensors;
  /**
   * The checkpoint's tensors left out of `tensors` (a model too large to send at once: its layers'):
   * the panel asks for each one (readWeight) when an upload or a forward reaches its layer.
   */
  readonly streamed?: readonly TensorIndexEntry[];
  /** Readable text of every vocabulary id (index = id), for the next-token view's top-k; sent once per model. */
  readonly vocab?: readonly string[];
}

export interface LoadModelResult {
  readonly backend: BackendInfo;
  /** Time the webview spent turning buffers into backend tensors. */
  readonly uploadMs: number;
}

export interface RunSettings {
  readonly backend: BackendPreference;
  /** Layers whose internals are kept; default all. */
  readonly layers?: readonly number[];
  /** Token positions whose states h_t are captured (negative counts from the end); default none: the state view scans to the selected token itself. */
  readonly statesAt?: readonly number[];
  /** mambaScope.runMemoryLimitMB: the panel refuses a run whose kept internals would take more. */
  readonly memoryLimitMB: number;
}

export interface RunParams {
  /** Host-chosen id of this inspection: later messages (selection, export) name it. */
  readonly runId: string;
  readonly modelId: string;
  /** Where the sample came from, for the panel title: "demo0.py:1-40". */
  readonly sampleName: string;
  /** Int32Array buffer of token ids [L]. */
  readonly ids: ArrayBuffer;
  /** Readable text of each token, [L]. */
  readonly tokens: readonly string[];
  /** [start, end) UTF-16 offsets of each token in the sample text. */
  readonly offsets: readonly (readonly [number, number])[];
  readonly settings: RunSettings;
}

/** What the editor decorations and their hover show, over the tokens the panel has at full resolution. */
export interface TokenSummary {
  readonly runId: string;
  /** Layers the summaries cover, in the order of the rows below. */
  readonly layers: readonly number[];
  /**
   * The tokens [start, end) the rows below cover: absent = every token of the run; a long run
   * (more than FULL_RESOLUTION_TOKENS) sends the window in view, and a new one (windowSummary) each time the window moves.
   */
  readonly window?: readonly [number, number];
  /** For each metric a float32 [layers.length, W] tensor (W: the tokens covered): what the editor decorations colour by. A metric the model cannot give is left out. */
  readonly perToken: Partial<Record<TokenMetric, TensorMessage>>;
  /** Most likely next token at each covered position: int32 ids [W] and float32 probabilities [W]; absent for models without logits. */
  readonly next?: { readonly ids: TensorMessage; readonly probs: TensorMessage };
}

export interface RunSummary extends TokenSummary {
  readonly backend: BackendInfo;
  readonly forwardMs: number;
  /** Why some layers are not among them (the run's memory limit), for the user. */
  readonly note?: string;
}

/** A tensor named, not sent: its stored dtype (safetensors' names: F32, BF16, …) and shape. */
export interface TensorIndexEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
}

export interface DumpParams {
  /** File name shown in the panel. */
  readonly name: string;
  /** The file's string metadata (mamba-dump/1: format, tokens, …). */
  readonly metadata: Record<string, string>;
  /** Every tensor in the file: name, the file's dtype and shape. */
  readonly index: readonly TensorIndexEntry[];
  /**
   * Tensors sent with this message (float32, or int32 for integer ones), e.g. input_ids,
   * layers.0.delta: all of them when they fit the host's budget (256 MiB), else none; the webview
   * then asks for what it shows with readTensor (a model checkpoint opened as a dump, a 10 GB file).
   */
  readonly tensors: NamedTensors;
}

export type ExportKind = 'png' | 'csv' | 'npy';

/** One tensor of a comparison (src/engine/analysis/compare.ts TensorComparison without the per-token profile). */
export interface ComparedTensor {
  readonly name: string;
  readonly layer: number | null;
  readonly shape: readonly number[];
  readonly maxAbsError: number;
  readonly normalizedError: number;
  readonly tolerance: { readonly rtol: number; readonly atol: number };
  /** First element with |a − b| > atol + rtol·|a| (or non-finite); token = its index on axis 0 (h: the h_tokens entry). */
  readonly firstDivergence: { readonly index: readonly number[]; readonly token: number | null } | null;
  readonly nonFinite: { readonly a: number; readonly b: number };
  /** max |a − b| per 512 positions of the token axis (analysis/compare.ts driftByPosition); null within one bucket. */
  readonly drift: readonly { readonly start: number; readonly maxAbsError: number }[] | null;
}

/** Where a file first holds a NaN/Inf, in forward order (src/engine/analysis/nonFinite.ts). */
export interface FirstNonFinite {
  readonly tensor: string;
  readonly layer: number | null;
  readonly quantity: string;
  readonly index: readonly number[];
  readonly token: number | null;
  /** 'NaN', 'Infinity' or '-Infinity': messages travel as JSON, where these numbers become null. */
  readonly value: string;
}

/** "Compare Dumps…": file a (the reference) as a dump for the token strip and Δ, and how b differs from it. */
export interface ComparisonParams {
  readonly dump: DumpParams;
  /** File name of b. */
  readonly b: string;
  readonly tensors: readonly ComparedTensor[];
  readonly firstDivergentLayer: number | null;
  readonly nonFinite: { readonly a: FirstNonFinite | null; readonly b: FirstNonFinite | null };
  /** |a − b| as [tokens, channels] per tensor name (errorMap: max over further axes, NaN where non-finite); tensors over the budget are left out. */
  readonly errorMaps: NamedTensors;
}

export interface ExportRequest {
  readonly kind: ExportKind;
  /** A view id the webview knows ("heatmap", "state", …); absent = the focused view / selected slice. */
  readonly view?: string;
}

export interface ExportData {
  readonly kind: ExportKind;
  /** File name without folder, with extension: "layer2-delta.npy". */
  readonly suggestedName: string;
  readonly bytes: ArrayBuffer;
  /**
   * The TransformerLens / MambaLens hook names of the exported tensor (blocks.2.hook_delta), the
   * aliases a dump's metadata gives it; absent for a view of derived values. A .npy header holds
   * no more than its dtype and shape, so the host shows them when it saves, and a CSV's corner cell holds them.
   */
  readonly hookNames?: readonly string[];
}

export interface Selection {
  readonly runId: string;
  readonly layer: number;
  /** Token position, or null when nothing is selected. */
  readonly token: number | null;
  readonly channel: number | null;
}

/**
 * An annotation of the current run as the panel shows it. The host keeps the full record
 * (src/engine/annotations: character offsets, context, timestamps) in
 * .mamba-scope/annotations/ and sends this view of it after every change.
 */
export interface Annotation {
  readonly id: string;
  readonly runId: string;
  /** Token range [start, end) in the run's tokens; empty when the span lies outside the inspected range. */
  readonly tokens: readonly [number, number];
  readonly layer: number | null;
  /** 'forgotten', 'retained' or a custom label. */
  readonly label: string;
  readonly note: string;
  /** The annotated text. */
  readonly text: string;
  /** The sample changed and the text was not found again: listed, never decorated. */
  readonly stale: boolean;
  /** Evidence an accepted suggestion keeps: where the retention fell below τ, and the causal check (mean KL with the write ablated, and ε). */
  readonly forgottenAt: number | null;
  readonly causal: CausalEvidence | null;
}

/** The causal check of a forgotten token: the mean KL (nats) of the outputs from forgottenAt on with its write ablated in the layer, and ε. */
export interface CausalEvidence {
  readonly meanKl: number;
  readonly epsilon: number;
}

/** What one intervention read from a file: a steer's vector, a patch-state's state and conv context; null for one that reads nothing. */
export type InterventionInputMessage =
  | { readonly vector: TensorMessage }
  | { readonly patch: { readonly token: number; readonly h: TensorMessage; readonly conv: TensorMessage } }
  | null;

/** What an intervention did to the outputs, as the panel reports it to the host (the `intervene` request, the e2e tests). */
export interface InterventionSummary {
  readonly runId: string;
  readonly specs: readonly string[];
  /** The first position whose next-token distribution moved (KL > 1e-12), or null. */
  readonly firstChanged: number | null;
  /** KL(p_clean ‖ p_intervened) at every position, nats: float32 [L]. */
  readonly kl: TensorMessage;
}

/** The detector's suggestion: token `token` is forgotten at token `forgottenAt` in `layer`. */
export interface AnnotationSuggestion {
  readonly layer: number;
  readonly token: number;
  readonly forgottenAt: number;
}

/** What the panel asks the host to do to the run's annotations (the host saves, then sends setAnnotations). */
export type AnnotationEdit =
  | { readonly op: 'add'; readonly runId: string; readonly tokens: readonly [number, number]; readonly layer: number | null; readonly threshold: number | null; readonly label: string; readonly note: string }
  | { readonly op: 'update'; readonly runId: string; readonly id: string; readonly label: string; readonly note: string }
  | { readonly op: 'remove'; readonly runId: string; readonly ids: readonly string[] }
  /**
   * The detector's result for one layer: forgottenAt[s − from] = first t with R(s→t) < τ, −1 =
   * retained; `from` (default 0): a long run's window start, the detector covering the window in
   * view (positions of the sample, as every token here).
   */
  | { readonly op: 'detect'; readonly runId: string; readonly layer: number; readonly threshold: number; readonly forgottenAt: readonly number[]; readonly from?: number }
  | { readonly op: 'accept' | 'reject'; readonly runId: string; readonly suggestions: readonly { readonly layer: number; readonly token: number; readonly causal?: CausalEvidence }[] };

// ---------------------------------------------------------------------------------------------
// The two directions

/** What the webview handles (the host sends these). */
export interface WebviewApi {
  requests: {
    loadModel: { params: LoadModelParams; result: LoadModelResult };
    run: { params: RunParams; result: RunSummary };
    showDump: { params: DumpParams; result: null };
    showComparison: { params: ComparisonParams; result: null };
    exportView: { params: ExportRequest; result: ExportData };
    /** For the e2e tests: what the panel currently shows, to prove it rendered real values. */
    describe: { params: null; result: PanelDescription };
    /** "Mamba Scope: Intervene…": runs interventions (their one-line specs) on the shown inspection, as the Interventions view does; null when the panel cancelled it. */
    intervene: { params: { readonly runId: string; readonly interventions: readonly string[] }; result: InterventionSummary | null };
  };
  notifications: {
    setSettings: ViewSettings;
    /** The editor's cursor moved onto an inspected token. */
    selectToken: { readonly runId: string; readonly token: number; readonly layer?: number };
    /** Annotations for a run (from the store) and the detector's open suggestions, replacing what the panel shows. */
    setAnnotations: { readonly runId: string; readonly annotations: readonly Annotation[]; readonly suggestions: readonly AnnotationSuggestion[] };
  };
}

/** What the host handles (the webview sends these). */
export interface HostApi {
  requests: {
    saveExport: { params: ExportData; result: { readonly savedTo: string | null } };
    /** One tensor of the open dump that was listed in DumpParams.index but not sent. */
    readTensor: { params: { readonly name: string }; result: TensorMessage };
    /** One weight of a streamed model (LoadModelParams.streamed). */
    readWeight: { params: { readonly modelId: string; readonly name: string }; result: TensorMessage };
    /** The host's file picker for an intervention's file: a steer's vector (FILE and the tensor KEY) or a patch-state's dump; null when cancelled. */
    pickInterventionFile: { params: { readonly kind: 'steer' | 'patch-state'; readonly dModel: number }; result: { readonly file: string; readonly key?: string } | null };
    /** What the interventions read from files, in their order, for a run of `tokens` tokens of the model (objects, not specs: a path may hold spaces). */
    readInterventionInputs: { params: { readonly modelId: string; readonly tokens: number; readonly interventions: readonly Intervention[] }; result: readonly InterventionInputMessage[] };
  };
  notifications: {
    ready: { readonly protocolVersion: number };
    backendInfo: BackendInfo;
    selectionChanged: Selection;
    metricChanged: { readonly metric: TokenMetric; readonly layer: number };
    /** A long run's window in view moved: the decorations follow it (RunSummary.window). */
    windowSummary: TokenSummary;
    annotationEdit: AnnotationEdit;
    /** The panel no longer holds this model's weights (a backend switch could not move them): send them again before the next run. */
    modelReleased: { readonly modelId: string };
    /** A failure outside any request (a view failed to draw); the other views keep working. */
    error: { readonly view: string; readonly error: WireError };
  };
}

/** The panel's state as numbers, for tests and diagnostics. */
export interface PanelDescription {
  readonly modelId: string | null;
  readonly runId: string | null;
  readonly backend: Backend | null;
  /** Which engine holds the loaded model's weights: the native WebGPU engine ('webgpu') or tfjs (the others). */
  readonly engine: 'webgpu-native' | 'tfjs' | null;
  readonly selection: Selection | null;
  /** Where the panel's memory goes, in bytes: the run's kept internals, tensors in the tfjs backend, and the wasm backend's heap (which never shrinks; null on other backends). */
  readonly memory: { readonly keptBytes: number; readonly backendBytes: number; readonly wasmHeapBytes: number | null };
  /** A long run (more than FULL_RESOLUTION_TOKENS): its length, the window in view and whether that window's internals are at full resolution yet (else the views show the tiles); null for other data. */
  readonly long: { readonly tokens: number; readonly window: readonly [number, number]; readonly fullResolution: boolean } | null;
  /** Per view: whether it drew, a digest of its pixels (distinct colours, min/max of the data shown), and which tensor it shows where it chooses one. */
  readonly views: Record<string, { readonly drawn: boolean; readonly distinctColors: number; readonly min: number; readonly max: number; readonly shows?: string }>;
}

// ---------------------------------------------------------------------------------------------
// Errors on the wire

export interface WireError {
  readonly kind: ErrorKind | 'internal';
  readonly source: string;
  readonly problem: string;
}

/** An unexpected failure on the other side (a bug, not bad input), carried with its message. */
export class RemoteError extends Error {
  readonly kind = 'internal';
  constructor(readonly source: string, readonly problem: string) {
    super(`${source}: ${problem}`);
    this.name = 'RemoteError';
  }
}

/** A malformed message: the two sides disagree about the protocol. */
export class ProtocolError extends Error {
  constructor(readonly source: string, readonly problem: string) {
    super(`${source}: ${problem}`);
    this.name = 'ProtocolError';
  }
}

export function toWireError(e: unknown, side: string): WireError {
  if (e instanceof MambaScopeError) return { kind: e.kind, source: e.source, problem: e.problem };
  if (e instanceof RemoteError || e instanceof ProtocolError) return { kind: 'internal', source: e.source, problem: e.problem };
  return { kind: 'internal', source: side, problem: e instanceof Error ? e.message : String(e) };
}

/** Rebuilds the error on the receiving side, so `instanceof CancelledError`/`InputError`-kind checks keep working. */
export function fromWireError(w: WireError): Error {
  if (w.kind === 'internal') return new RemoteError(w.source, w.problem);
  if (w.kind === 'cancelled') return new CancelledError(w.source);
  return new MambaScopeError(w.kind, w.source, w.problem);
}

// ---------------------------------------------------------------------------------------------
// The RPC

export interface ApiShape {
  requests: Record<string, { params: unknown; result: unknown }>;
  notifications: Record<string, unknown>;
}

export type WireMessage =
  | { readonly rpc: 'request'; readonly id: number; readonly method: string; readonly params: unknown }
  | { readonly rpc: 'reply'; readonly id: number; readonly result?: unknown; readonly error?: WireError }
  | { readonly rpc: 'cancel'; readonly id: number }
  | { readonly rpc: 'progress'; readonly id: number; readonly progress: Progress }
  | { readonly rpc: 'notify'; readonly method: string; readonly params: unknown };

/** What a request handler gets besides its params. */
export interface RequestContext {
  /** Aborted when the requester cancels; handlers poll it (engine: checkCancelled) and throw CancelledError. */
  readonly signal: AbortSignal;
  readonly progress: (p: Progress) => void;
  /** Throws CancelledError if cancelled: pass as ForwardOptions.checkCancelled. */
  readonly throwIfCancelled: () => void;
}

export interface RequestOptions {
  /** Aborting sends a cancel to the other side and rejects the promise with CancelledError at once. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: Progress) => void;
}

type RequestHandler<R extends { params: unknown; result: unknown }> = (params: R['params'], ctx: RequestContext) => R['result'] | Promise<R['result']>;

interface Pending {
  readonly method: string;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: Error) => void;
  readonly onProgress?: (p: Progress) => void;
  readonly cleanup: () => void;
}

/**
 * One end of the conversation. `In` is the API this side handles, `Out` the one it calls.
 *   host:    new Rpc<HostApi, WebviewApi>('host', m => panel.webview.postMessage(m), l => panel.webview.onDidReceiveMessage(l))
 *   webview: new Rpc<WebviewApi, HostApi>('webview', m => vscodeApi.postMessage(m), l => addEventListener('message', e => l(e.data)))
 */
export class Rpc<In extends ApiShape, Out extends ApiShape> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly running = new Map<number, AbortController>();
  private readonly requestHandlers = new Map<string, RequestHandler<{ params: unknown; result: unknown }>>();
  private readonly notificationHandlers = new Map<string, (params: unknown) => void>();
  private disposed = false;
  private readonly unsubscribe: () => void;

  constructor(
    /** Names this side in errors: "host" or "webview". */
    private readonly side: string,
    private readonly post: (message: WireMessage) => unknown,
    onMessage: (listener: (data: unknown) => void) => { dispose(): void } | void,
  ) {
    const sub = onMessage((data) => this.receive(data));
    this.unsubscribe = () => sub?.dispose();
  }

  /** Registers the handler of one request this side serves (replacing an earlier one). */
  handle<M extends keyof In['requests'] & string>(method: M, handler: RequestHandler<In['requests'][M]>): void {
    this.requestHandlers.set(method, handler as unknown as RequestHandler<{ params: unknown; result: unknown }>);
  }

  on<M extends keyof In['notifications'] & string>(method: M, handler: (params: In['notifications'][M]) => void): void {
    this.notificationHandlers.set(method, handler as (params: unknown) => void);
  }

  request<M extends keyof Out['requests'] & string>(method: M, params: Out['requests'][M]['params'], options: RequestOptions = {}): Promise<Out['requests'][M]['result']> {
    if (this.disposed) return Promise.reject(new CancelledError(`${method} (panel closed)`));
    const { signal, onProgress } = options;
    if (signal?.aborted) return Promise.reject(new CancelledError(method));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id);
        this.send({ rpc: 'cancel', id });
        reject(new CancelledError(method));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, { method, resolve, reject, onProgress, cleanup: () => signal?.removeEventListener('abort', onAbort) });
      this.send({ rpc: 'request', id, method, params });
    }) as Promise<Out['requests'][M]['result']>;
  }

  notify<M extends keyof Out['notifications'] & string>(method: M, params: Out['notifications'][M]): void {
    if (!this.disposed) this.send({ rpc: 'notify', method, params });
  }

  /** Rejects every pending request with CancelledError, aborts running handlers, stops listening. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.unsubscribe();
    for (const [, p] of this.pending) {
      p.cleanup();
      p.reject(new CancelledError(`${p.method} (panel closed)`));
    }
    this.pending.clear();
    for (const [, c] of this.running) c.abort();
    this.running.clear();
  }

  /** Entry point for every incoming message; exposed for tests and for sides that route messages themselves. */
  receive(data: unknown): void {
    if (this.disposed || !isWireMessage(data)) return;
    switch (data.rpc) {
      case 'request':
        void this.serve(data.id, data.method, data.params);
        return;
      case 'reply': {
        const p = this.pending.get(data.id);
        if (!p) return; // cancelled or already answered
        this.pending.delete(data.id);
        p.cleanup();
        if (data.error) p.reject(fromWireError(data.error));
        else p.resolve(data.result);
        return;
      }
      case 'cancel':
        this.running.get(data.id)?.abort();
        return;
      case 'progress':
        this.pending.get(data.id)?.onProgress?.(data.progress);
        return;
      case 'notify': {
        const h = this.notificationHandlers.get(data.method);
        if (!h) return;
        try {
          h(data.params);
        } catch (e) {
          // A notification has no reply to carry the error; a throwing handler must not break the receive loop.
          console.error(`[${this.side}] ${data.method} handler failed:`, e);
        }
        return;
      }
    }
  }

  private async serve(id: number, method: string, params: unknown): Promise<void> {
    const handler = this.requestHandlers.get(method);
    if (!handler) {
      this.send({ rpc: 'reply', id, error: { kind: 'unsupported', source: this.side, problem: `has no handler for "${method}"` } });
      return;
    }
    const controller = new AbortController();
    this.running.set(id, controller);
    const ctx: RequestContext = {
      signal: controller.signal,
      progress: (progress) => {
        if (!controller.signal.aborted) this.send({ rpc: 'progress', id, progress });
      },
      throwIfCancelled: () => {
        if (controller.signal.aborted) throw new CancelledError(method);
      },
    };
    try {
      const result = await handler(params, ctx);
      this.send({ rpc: 'reply', id, result: result ?? null });
    } catch (e) {
      this.send({ rpc: 'reply', id, error: toWireError(e, this.side) });
    } finally {
      this.running.delete(id);
    }
  }

  private send(message: WireMessage): void {
    if (this.disposed) return;
    try {
      // postMessage may return a promise (the host's webview.postMessage) that rejects once the panel is gone.
      const r = this.post(message);
      if (r instanceof Promise) r.catch(() => undefined);
    } catch {
      // The other side is gone; pending requests are settled by dispose().
    }
  }
}

function isWireMessage(data: unknown): data is WireMessage {
  if (typeof data !== 'object' || data === null) return false;
  const m = data as { rpc?: unknown; id?: unknown; method?: unknown };
  switch (m.rpc) {
    case 'request':
      return typeof m.id === 'number' && typeof m.method === 'string';
    case 'reply':
    case 'cancel':
    case 'progress':
      return typeof m.id === 'number';
    case 'notify':
      return typeof m.method === 'string';
    default:
      return false;
  }
}

export type HostRpc = Rpc<HostApi, WebviewApi>;
export type WebviewRpc = Rpc<WebviewApi, HostApi>;
