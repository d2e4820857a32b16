/**
 * NumPy .npz: a zip archive of .npy members, stored (np.savez) or deflated (np.savez_compressed).
 * The archive is read by range (zipArchive.ts); per member, opening reads only as much as its .npy
 * header needs, and a member's data is inflated when that tensor is read, one member at a time,
 * into a buffer of its declared size, up to the per-member limit.
 */
import { InputError, LimitError } from '../errors';
import type { ByteSource } from '../io';
import type { Tensor } from '../tensor';
import type { DType } from './dtypes';
import { assertAllocatable, decodedBytes, decodeNpyData, readNpyLayout, type NpyLayout } from './npy';
import type { TensorStore } from './safetensors';
import { ZipArchive, type ZipEntry } from './zipArchive';

/** Default cap on one member's uncompressed size (it is inflated into memory whole). */
export const DEFAULT_MAX_MEMBER_BYTES = 2 ** 31;

export interface NpzOptions {
  /** Members larger than this (uncompressed) are refused with a LimitError when read. */
  readonly maxMemberBytes?: number;
}

// --- the store ----------------------------------------------------------------------------------

interface Member {
  readonly entry: ZipEntry;
  readonly layout: NpyLayout;
}

/** An .npz as a TensorStore: one tensor per .npy member, named without ".npy". */
export class NpzFile implements TensorStore {
  readonly metadata: Readonly<Record<string, string>> = {};

  private constructor(
    private readonly archive: ZipArchive,
    private readonly members: ReadonlyMap<string, Member>,
    private readonly maxMemberBytes: number,
  ) {}

  get name(): string {
    return this.archive.name;
  }

  static async open(source: ByteSource, options: NpzOptions = {}): Promise<NpzFile> {
    return NpzFile.fromArchive(await ZipArchive.open(source), options);
  }

  /** Reads every .npy member's header (members of other kinds are not tensors and are skipped). */
  static async fromArchive(archive: ZipArchive, options: NpzOptions = {}): Promise<NpzFile> {
    const members = new Map<string, Member>();
    for (const entry of archive.entries) {
      if (!entry.name.endsWith('.npy')) continue;
      const tensor = entry.name.slice(0, -'.npy'.length);
      if (members.has(tensor)) throw new InputError(archive.name, `has two members named "${entry.name}"`);
      const layout = await readNpyLayout((n) => archive.peek(entry, n), entry.uncompressedSize, `${archive.name} member "${entry.name}"`);
      members.set(tensor, { entry, layout });
    }
    if (members.size === 0) throw new InputError(archive.name, 'is a zip archive with no .npy members (not an .npz file?)');
    return new NpzFile(archive, members, options.maxMemberBytes ?? DEFAULT_MAX_MEMBER_BYTES);
  }

  names(): string[] {
    return [...this.members.keys()];
  }

  info(name: string): { dtype: DType; shape: readonly number[] } | undefined {
    const m = this.members.get(name);
    return m && { dtype: m.layout.dtype, shape: m.layout.shape };
  }

  private async data(name: string, as: 'native' | 'float32' | 'float64'): Promise<{ layout: NpyLayout; bytes: Uint8Array }> {
    const m = this.members.get(name);
    if (!m) throw new InputError(this.name, `has no tensor named "${name}"`);
    assertAllocatable(this.name, `tensor "${name}"`, decodedBytes(m.layout, as));
    if (m.entry.uncompressedSize > this.maxMemberBytes) {
      throw new LimitError(this.name, `member "${m.entry.name}" is ${m.entry.uncompressedSize} bytes uncompressed, over the ${this.maxMemberBytes}-byte limit for one npz member; raise the maxMemberBytes option or save the array as .npy or safetensors, which are read by range`);
    }
    const member = await this.archive.extract(m.entry);
    return { layout: m.layout, bytes: member.subarray(m.layout.dataOffset) };
  }

  async readFloat(name: string, precision: 'float32'): Promise<Tensor<Float32Array>>;
  async readFloat(name: string, precision: 'float64'): Promise<Tensor<Float64Array>>;
  async readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>>;
  async readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>> {
    const { layout, bytes } = await this.data(name, precision);
    return decodeNpyData(layout, bytes, precision);
  }

  async readNative(name: string): Promise<Tensor> {
    const { layout, bytes } = await this.data(name, 'native');
    return decodeNpyData(layout, bytes, 'native');
  }
}
