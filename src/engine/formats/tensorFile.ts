/**
 * Opens any tensor file the user points at — safetensors, .npy or .npz — by its first bytes, with
 * the extension only as a hint for files too broken to recognize. Pickled PyTorch files are
 * refused with the command that converts them: unpickling runs code chosen by the file's author.
 */
import { InputError } from '../errors';
import type { ByteSource } from '../io';
import { baseName, hasNpyMagic, NpyFile } from './npy';
import { NpzFile, type NpzOptions } from './npz';
import { SafetensorsFile, type TensorStore } from './safetensors';
import { ZipArchive } from './zipArchive';

export type OpenTensorFileOptions = NpzOptions;

const TORCH_EXTENSIONS = ['.pt', '.pth', '.bin', '.ckpt'];

function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) ? name.slice(dot).toLowerCase() : '';
}

function refusePickle(source: ByteSource, why: string): never {
  const stem = baseName(source.name);
  const file = source.name.slice(Math.max(source.name.lastIndexOf('/'), source.name.lastIndexOf('\\')) + 1);
  throw new InputError(
    source.name,
    `${why}; Mamba Scope never unpickles (it can run arbitrary code). Convert it to safetensors: ` +
      `python -c "import torch; from safetensors.torch import save_file; ` +
      `sd = torch.load('${file}', map_location='cpu', weights_only=True); ` +
      `save_file({k: v.contiguous() for k, v in sd.items()}, '${stem}.safetensors')"`,
  );
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
    // torch.save's zip format keeps its pickle in <archive>/data.pkl next to the raw storages.
    if (archive.entries.some((e) => e.name === 'data.pkl' || e.name.endsWith('/data.pkl'))) {
      refusePickle(source, 'is a PyTorch checkpoint (a zip holding a pickle)');
    }
    return NpzFile.fromArchive(archive, options);
  }
  if (isPickle(head)) refusePickle(source, 'is a Python pickle (a legacy PyTorch checkpoint?)');
  if (looksLikeSafetensors(head) || ext === '.safetensors') return SafetensorsFile.open(source);
  if (ext === '.npy') return NpyFile.open(source);
  if (ext === '.npz') return NpzFile.open(source, options);
  if (TORCH_EXTENSIONS.includes(ext)) refusePickle(source, `has a PyTorch extension (${ext}) and is not safetensors`);
  const hex = [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new InputError(source.name, `is not a safetensors, .npy or .npz file (it starts with bytes ${hex || 'nothing: it is empty'})`);
}
