/**
 * torch.save checkpoints (pytorch_model.bin, .pt, .pth, .ckpt) read with the semantics of
 * torch.load(weights_only=True), without running any of their code: the pickle goes through the
 * restricted unpickler (pickle.ts) whose only globals are the handful below, written here in
 * TypeScript. Two layouts:
 *  - zip (torch ≥ 1.6): `<archive>/data.pkl` holds the state dict, each storage is a stored
 *    (uncompressed) record `<archive>/data/<key>`;
 *  - legacy (torch < 1.6): pickles in a row — magic number, protocol version, system info, the
 *    state dict, the list of storage keys — then every storage's element count (8 bytes) and bytes.
 * Opening reads the pickles and the directory only and validates every tensor against its storage;
 * a tensor's bytes are read by range when it is asked for. Tensors that are the same view of the
 * same storage (tied weights: mamba_ssm's lm_head and embedding) are read once and shared.
 */
import { InputError } from '../errors';
import type { ByteSource } from '../io';
import { shapeString, sizeOf, type Tensor, type TensorData } from '../tensor';
import { DTYPE_BITS, decodeFloat, decodeNative, type DType } from './dtypes';
import { assertAllocatable } from './npy';
import { kindOf, PickleFault, PyDict, PyGlobal, PyList, PyTuple, TruncatedPickleError, unpickle, type GlobalHandler, type PyValue } from './pickle';
import type { TensorStore } from './safetensors';
import { ZipArchive, type ZipEntry } from './zipArchive';

/** data.pkl (or the legacy pickles) is parsed in memory; real ones are kilobytes, 100 MB is absurd. */
export const MAX_PICKLE_BYTES = 100_000_000;
/** How deep state dicts may nest (`{"model": {"encoder": {...}}}`); flat is the norm. */
const MAX_NESTING = 32;

/** The storage classes a persistent id names, as the element type of the storage. */
const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  'torch.DoubleStorage': 'F64', 'torch.FloatStorage': 'F32', 'torch.HalfStorage': 'F16', 'torch.BFloat16Storage': 'BF16',
  'torch.LongStorage': 'I64', 'torch.IntStorage': 'I32', 'torch.ShortStorage': 'I16', 'torch.CharStorage': 'I8',
  'torch.ByteStorage': 'U8', 'torch.BoolStorage': 'BOOL',
};

/** A storage as the pickle names it; where its bytes are is settled by the layout. */
class StorageRef {
  readonly kind = 'a storage';
  constructor(readonly key: string, readonly dtype: DType) {}
}

/** What _rebuild_tensor_v2 returns: a strided view of a storage, still unchecked against its bytes. */
class TensorView {
  readonly kind = 'a tensor';
  constructor(readonly storage: StorageRef, readonly offset: number, readonly shape: readonly number[], readonly stride: readonly number[]) {}
}

interface StorageBytes {
  /** Absolute offset in the file. */
  readonly begin: number;
  readonly bytes: number;
  /** How to name it in messages: the zip record or "storage <key>". */
  readonly label: string;
}

interface TorchTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly stride: readonly number[];
  readonly storageKey: string;
  /** Absolute byte range holding every element of the view. */
  readonly begin: number;
  readonly end: number;
  readonly contiguous: boolean;
}

const isIndex = (v: PyValue): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function indexTuple(v: PyValue, what: string): number[] {
  if (!(v instanceof PyTuple) || !v.items.every(isIndex)) throw new PickleFault(`${what} is not a tuple of non-negative integers`);
  return v.items as number[];
}

/** collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter, and the storage classes as dtype tags. */
const GLOBALS: ReadonlyMap<string, GlobalHandler> = new Map<string, GlobalHandler>([
  ['collections.OrderedDict', {
    call: (args) => {
      if (args.length) throw new PickleFault('OrderedDict is only built empty, then filled by SETITEMS');
      return new PyDict();
    },
    construct: () => new PyDict(),
  }],
  ['torch._utils._rebuild_tensor_v2', {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    call: (args) => {
      if (args.length !== 6 && args.length !== 7) throw new PickleFault(`_rebuild_tensor_v2 takes 6 or 7 arguments, not ${args.length}`);
      const [storage, offset, size, stride, requiresGrad, hooks, metadata = null] = args;
      if (!(storage instanceof StorageRef)) throw new PickleFault(`_rebuild_tensor_v2 of ${kindOf(storage)}, not a storage`);
      if (!isIndex(offset)) throw new PickleFault('_rebuild_tensor_v2 storage offset is not a non-negative integer');
      const shape = indexTuple(size, '_rebuild_tensor_v2 size');
      const strides = indexTuple(stride, '_rebuild_tensor_v2 stride');
      if (shape.length !== strides.length) throw new PickleFault(`_rebuild_tensor_v2 size ${shapeString(shape)} and stride ${shapeString(strides)} differ in length`);
      if (typeof requiresGrad !== 'boolean' || !(hooks instanceof PyDict) || !(metadata === null || metadata instanceof PyDict)) {
        throw new PickleFault('_rebuild_tensor_v2 requires_grad, backward_hooks or metadata is not a bool, a dict and a dict or None');
      }
      return new TensorView(storage, offset, shape, strides);
    },
  }],
  ['torch._utils._rebuild_parameter', {
    // (data, requires_grad, backward_hooks): an nn.Parameter is its tensor here.
    call: (args) => {
      if (args.length !== 3 || !(args[0] instanceof TensorView)) throw new PickleFault('_rebuild_parameter takes a tensor, requires_grad and backward_hooks');
      return args[0];
    },
  }],
  ...Object.keys(STORAGE_DTYPES).map((name): [string, GlobalHandler] => [name, {}]),
]);

/**
 * The persistent-id loader: a storage reference ('storage', class, key, location, numel) — zip —
 * or the same with a sixth item, the view metadata, which is None unless torch < 0.4 wrote it.
 */
function storageLoader(legacy: boolean): { load: (pid: PyValue) => PyValue; storages: Map<string, StorageRef> } {
  const storages = new Map<string, StorageRef>();
  const load = (pid: PyValue): PyValue => {
    const items = pid instanceof PyTuple ? pid.items : [];
    if (items[0] !== 'storage') throw new PickleFault(`a persistent id that is not a storage reference (${items.length ? JSON.stringify(String(items[0])) : kindOf(pid)})`);
    if (items.length !== (legacy ? 6 : 5)) throw new PickleFault(`a storage reference of ${items.length} items, not ${legacy ? 6 : 5}`);
    const [, cls, key, location, numel] = items;
    const dtype = cls instanceof PyGlobal ? STORAGE_DTYPES[cls.name] : undefined;
    if (!dtype) throw new PickleFault(`a storage whose class is ${kindOf(cls)}, not a torch storage type`);
    if (typeof key !== 'string' || typeof location !== 'string' || !isIndex(numel)) throw new PickleFault('a storage reference whose key, location or size is malformed');
    if (legacy && items[5] !== null) throw new PickleFault(`storage ${key} is a view of another storage (torch < 0.4), which is not read`);
    const known = storages.get(key);
    if (known && known.dtype !== dtype) throw new PickleFault(`storage ${key} is named as both ${known.dtype} and ${dtype}`);
    const ref = known ?? new StorageRef(key, dtype);
    storages.set(key, ref);
    return ref;
  };
  return { load, storages };
}

/** The state dict's tensors by their dotted names; nested dicts are joined with ".". */
function tensorsOf(root: PyValue, file: string, where: string): Map<string, TensorView> {
  if (!(root instanceof PyDict)) throw new InputError(file, `${where} holds ${kindOf(root)}, not a state dict of tensors`);
  const out = new Map<string, TensorView>();
  const seen = new Set<PyDict>();
  const pending: [PyDict, string, number][] = [[root, '', 0]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [dict, prefix, depth] = next;
    // A dict reached twice would be a cycle or, nested, an exponential number of names.
    if (seen.has(dict)) throw new InputError(file, `${where}: the dict at "${prefix}" appears twice in the state dict`);
    seen.add(dict);
    for (const [key, value] of dict.items) {
      if (typeof key !== 'string') throw new InputError(file, `${where}: a state dict key that is ${kindOf(key)}, not a name`);
      const name = prefix + key;
      if (value instanceof TensorView) out.set(name, value);
      else if (value instanceof PyDict && depth < MAX_NESTING) pending.push([value, `${name}.`, depth + 1]);
      else if (value instanceof PyDict) throw new InputError(file, `${where}: "${name}" nests dicts more than ${MAX_NESTING} deep`);
      else throw new InputError(file, `${where}: "${name}" is ${kindOf(value)}, not a tensor (only state dicts of tensors are read)`);
    }
  }
  return out;
}

/** Checks a view against the bytes its storage has and resolves its byte range. */
function placeTensor(name: string, view: TensorView, storage: StorageBytes, file: string): TorchTensor {
  const { dtype } = view.storage;
  const size = DTYPE_BITS[dtype] / 8;
  const count = sizeOf(view.shape);
  let last = view.offset;
  for (let d = 0; d < view.shape.length; d++) last += view.shape[d] > 0 ? (view.shape[d] - 1) * view.stride[d] : 0;
  const what = `tensor "${name}" (${dtype} ${shapeString(view.shape)}, stride ${shapeString(view.stride)}, offset ${view.offset})`;
  const span = count === 0 ? 0 : (last - view.offset + 1) * size;
  const end = count === 0 ? 0 : (last + 1) * size;
  if (!Number.isSafeInteger(count) || !Number.isSafeInteger(end)) throw new InputError(file, `${what} has an impossible size`);
  if (end > storage.bytes) throw new InputError(file, `${what} needs ${end} bytes of ${storage.label}, which has ${storage.bytes} (truncated?)`);
  // More elements than bytes to hold them is a broadcast (stride 0) or overlapping view: reading it
  // would let a small file claim a huge tensor, and a state dict never holds one.
  if (count * size > span) throw new InputError(file, `${what} has more elements than its bytes hold (an expanded or overlapping view), which is not read`);
  let dense = 1;
  let contiguous = true;
  for (let d = view.shape.length - 1; d >= 0; d--) {
    if (view.shape[d] !== 1 && view.stride[d] !== dense) contiguous = false;
    dense *= view.shape[d];
  }
  const begin = storage.begin + (count === 0 ? 0 : view.offset * size);
  return { dtype, shape: view.shape, stride: view.stride, storageKey: view.storage.key, begin, end: begin + span, contiguous };
}

/** The elements of a strided view, gathered row-major from the decoded bytes of its span. */
function gather<T extends TensorData>(span: T, shape: readonly number[], stride: readonly number[]): T {
  const out = new (span.constructor as new (n: number) => T)(sizeOf(shape));
  const index = new Array<number>(shape.length).fill(0);
  let at = 0;
  for (let i = 0; i < out.length; i++) {
    (out as unknown as number[])[i] = (span as unknown as number[])[at];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) {
        at += stride[d];
        break;
      }
      at -= (shape[d] - 1) * stride[d];
      index[d] = 0;
    }
  }
  return out;
}

/** Whether a zip archive is a torch.save checkpoint: it holds `<archive>/data.pkl`. */
export function isTorchArchive(archive: ZipArchive): boolean {
  return archive.entries.some((e) => /^[^/]+\/data\.pkl$/.test(e.name));
}

export class TorchCheckpoint implements TensorStore {
  readonly metadata: Readonly<Record<string, string>> = {};
  /** Tensors already handed out, by view: tied weights come back as the same tensor, read once. */
  private readonly handedOut = new Map<string, WeakRef<Tensor>>();

  private constructor(
    private readonly source: ByteSource,
    private readonly tensors: ReadonlyMap<string, TorchTensor>,
  ) {}

  get name(): string {
    return this.source.name;
  }

  /** A zip or legacy checkpoint, told apart by the first bytes. */
  static async open(source: ByteSource): Promise<TorchCheckpoint> {
    const head = await source.read(0, Math.min(source.size, 2));
    if (head[0] === 0x50 && head[1] === 0x4b) return TorchCheckpoint.fromArchive(await ZipArchive.open(source));
    if (head[0] === 0x80) return TorchCheckpoint.openLegacy(source);
    throw new InputError(source.name, 'is not a torch.save checkpoint (neither a zip archive nor a pickle)');
  }

  static async fromArchive(archive: ZipArchive): Promise<TorchCheckpoint> {
    const file = archive.name;
    const pickles = archive.entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
    if (pickles.length !== 1) throw new InputError(file, pickles.length ? `holds ${pickles.length} torch archives (${pickles.map((e) => e.name).join(', ')}); one is read` : 'is a zip archive without <archive>/data.pkl: not a torch.save checkpoint');
    const pkl = pickles[0];
    const prefix = pkl.name.slice(0, -'data.pkl'.length);
    const records = new Map(archive.entries.map((e) => [e.name, e]));
    const byteorder = records.get(`${prefix}byteorder`);
    if (byteorder) {
      const order = new TextDecoder().decode(await archive.peek(byteorder, 16));
      if (order !== 'little') throw new InputError(file, `${byteorder.name} says ${JSON.stringify(order.slice(0, 16))}; only little-endian checkpoints are read`);
    }
    if (pkl.uncompressedSize > MAX_PICKLE_BYTES) throw new InputError(file, `${pkl.name} is ${pkl.uncompressedSize} bytes, more than the ${MAX_PICKLE_BYTES} a state dict's pickle can need`);
    const loader = storageLoader(false);
    const { value } = unpickle(await archive.extract(pkl), 0, { source: file, label: pkl.name, globals: GLOBALS, persistentLoad: loader.load });
    const placed = new Map<string, StorageBytes>();
    for (const key of loader.storages.keys()) {
      const entry: ZipEntry | undefined = records.get(`${prefix}data/${key}`);
      if (!entry) throw new InputError(file, `${pkl.name} uses storage ${key}, but the archive has no record ${prefix}data/${key} (a missing storage)`);
      if (entry.method !== 0) throw new InputError(file, `record ${entry.name} is compressed (deflate); torch.save stores storages uncompressed, and they are read by range`);
      placed.set(key, { begin: entry.dataStart, bytes: entry.uncompressedSize, label: `record ${entry.name}` });
    }
    return TorchCheckpoint.place(archive.source, tensorsOf(value, file, pkl.name), placed);
  }

  /** The pre-1.6 layout. Its pickles' length is unknown until parsed, so the head is read in growing windows. */
  static async openLegacy(source: ByteSource): Promise<TorchCheckpoint> {
    const limit = Math.min(source.size, MAX_PICKLE_BYTES);
    for (let window = Math.min(limit, 1 << 16); ; window = Math.min(limit, window * 8)) {
      try {
        return await TorchCheckpoint.parseLegacy(source, await source.read(0, window));
      } catch (e) {
        if (!(e instanceof TruncatedPickleError) || window === source.size) throw e;
        if (window === limit) throw new InputError(source.name, `has pickles longer than ${MAX_PICKLE_BYTES} bytes, more than a state dict can need`);
      }
    }
  }

  private static async parseLegacy(source: ByteSource, head: Uint8Array): Promise<TorchCheckpoint> {
    const file = source.name;
    const next = (label: string, at: number, persistentLoad?: (pid: PyValue) => PyValue) => unpickle(head, at, { source: file, label, globals: GLOBALS, persistentLoad });
    const magic = next('pickle 1 (magic number)', 0);
    if (magic.value !== 0x1950a86a20f9469cfc6cn) throw new InputError(file, 'is a pickle but not a torch.save checkpoint (no legacy magic number)');
    const protocol = next('pickle 2 (protocol version)', magic.end);
    if (protocol.value !== 1001) throw new InputError(file, `has legacy protocol version ${String(protocol.value)}; torch writes 1001`);
    const info = next('pickle 3 (system info)', protocol.end);
    if (!(info.value instanceof PyDict) || info.value.items.get('little_endian') !== true) throw new InputError(file, 'was written on a big-endian machine (or has no system info); only little-endian checkpoints are read');
    const loader = storageLoader(true);
    const main = next('pickle 4 (state dict)', info.end, loader.load);
    const keys = next('pickle 5 (storage keys)', main.end);
    if (!(keys.value instanceof PyList) || !keys.value.items.every((k) => typeof k === 'string')) throw new InputError(file, 'pickle 5 (storage keys) is not a list of strings');
    const placed = new Map<string, StorageBytes>();
    let pos = keys.end;
    for (const key of keys.value.items as string[]) {
      const ref = loader.storages.get(key);
      if (!ref) throw new InputError(file, `lists storage ${key}, which no tensor uses`);
      if (pos + 8 > source.size) throw new InputError(file, `ends before storage ${key}'s element count at byte ${pos} (truncated?)`);
      const count = new DataView((await source.read(pos, 8)).slice().buffer).getBigUint64(0, true);
      const bytes = count * BigInt(DTYPE_BITS[ref.dtype] / 8);
      if (bytes > BigInt(source.size - pos - 8)) throw new InputError(file, `storage ${key} declares ${count} ${ref.dtype} elements at byte ${pos}, more than the rest of the file holds (truncated?)`);
      placed.set(key, { begin: pos + 8, bytes: Number(bytes), label: `storage ${key}` });
      pos += 8 + Number(bytes);
    }
    for (const key of loader.storages.keys()) {
      if (!placed.has(key)) throw new InputError(file, `pickle 4 (state dict) uses storage ${key}, which the file does not hold (a missing storage)`);
    }
    return TorchCheckpoint.place(source, tensorsOf(main.value, file, 'pickle 4 (state dict)'), placed);
  }

  private static place(source: ByteSource, views: ReadonlyMap<string, TensorView>, storages: ReadonlyMap<string, StorageBytes>): TorchCheckpoint {
    const tensors = new Map<string, TorchTensor>();
    for (const [name, view] of views) tensors.set(name, placeTensor(name, view, storages.get(view.storage.key)!, source.name));
    return new TorchCheckpoint(source, tensors);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): { dtype: DType; shape: readonly number[] } | undefined {
    const t = this.tensors.get(name);
    return t && { dtype: t.dtype, shape: t.shape };
  }

  private async read(name: string, as: 'native' | 'float32' | 'float64'): Promise<Tensor> {
    const t = this.tensors.get(name);
    if (!t) throw new InputError(this.name, `has no tensor named "${name}"`);
    const viewKey = `${t.storageKey}|${t.begin}|${t.shape}|${t.stride}|${as}`;
    const shared = this.handedOut.get(viewKey)?.deref();
    if (shared) return shared;
    const size = DTYPE_BITS[t.dtype] / 8;
    const spanCount = (t.end - t.begin) / size;
    // The widest decode is float64; a gather allocates its output next to the span.
    assertAllocatable(this.name, `tensor "${name}"`, Math.max(t.end - t.begin, spanCount * (as === 'float32' ? 4 : 8)));
    const bytes = await this.source.read(t.begin, t.end - t.begin);
    const span = as === 'native' ? decodeNative(t.dtype, bytes, spanCount) : decodeFloat(t.dtype, bytes, spanCount, as === 'float64' ? Float64Array : Float32Array);
    const tensor: Tensor = { shape: t.shape, data: t.contiguous ? span : gather(span, t.shape, t.stride) };
    this.handedOut.set(viewKey, new WeakRef(tensor));
    return tensor;
  }

  async readFloat(name: string, precision: 'float32'): Promise<Tensor<Float32Array>>;
  async readFloat(name: string, precision: 'float64'): Promise<Tensor<Float64Array>>;
  async readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>>;
  async readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>> {
    return (await this.read(name, precision)) as Tensor<Float32Array | Float64Array>;
  }

  async readNative(name: string): Promise<Tensor> {
    return this.read(name, 'native');
  }
}
