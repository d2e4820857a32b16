/**
 * Opens any tensor file the user points at — safetensors, .npy, .npz or a torch.save checkpoint —
 * by its first bytes, with the extension only as a hint for files too broken to recognize.
 * torch.save files go through torchCheckpoint.ts, which never runs the code a pickle can carry.
 */
import { InputError } from '../errors';
import type { ByteSource } from '../io';
import { hasNpyMagic, NpyFile } from './npy';
import { NpzFile, type NpzOptions } from './npz';
import { SafetensorsFile, type TensorStore } from './safetensors';
import { isTorchArchive, TorchCheckpoint } from './torchCheckpoint';
import { ZipArchive } from './zipArchive';

export type OpenTensorFileOptions = NpzOptions;

const TORCH_EXTENSIONS = ['.pt', '.pth', '.bin', '.ckpt'];

function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) ? name.slice(dot).toLowerCase() : '';
}

function isZip(head: Uint8Array): boolean {
  // A local file header, or the end record of an empty archive.
  return head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6));
}

/** Pickle protocol 2+ starts with PROTO (0x80) and the protocol number. */
function isPickle(head: Uint8Array): boolean {
  return head[0] === 0x80 && head[1] >= 2 && head[1] <= 5;
}

/** safetensors starts with its header length, then the header's "{". */
function looksLikeSafetensors(head: Uint8Array): boolean {
  return head.length >= 9 && head[8] === 0x7b;
}

export async function openTensorFile(source: ByteSource, options: OpenTensorFileOptions = {}): Promise<TensorStore> {
  const head = await source.read(0, Math.min(source.size, 16));
  const ext = extensionOf(source.name);
  if (hasNpyMagic(head)) return NpyFile.open(source);
  if (isZip(head)) {
    const archive = await ZipArchive.open(source);
    return isTorchArchive(archive) ? TorchCheckpoint.fromArchive(archive) : NpzFile.fromArchive(archive, options);
  }
  if (isPickle(head)) return TorchCheckpoint.openLegacy(source);
  if (looksLikeSafetensors(head) || ext === '.safetensors') return SafetensorsFile.open(source);
  if (ext === '.npy') return NpyFile.open(source);
  if (ext === '.npz') return NpzFile.open(source, options);
  const hex = [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const starts = `it starts with bytes ${hex || 'nothing: it is empty'}`;
  if (TORCH_EXTENSIONS.includes(ext)) {
    throw new InputError(source.name, `has a PyTorch extension (${ext}) but is neither a torch.save zip, a pickle nor safetensors (${starts})`);
  }
  throw new InputError(source.name, `is not a safetensors, .npy, .npz or torch.save file (${starts})`);
}
