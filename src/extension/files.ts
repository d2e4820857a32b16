/**
 * The engine's FileStore/ByteSource over VS Code URIs. Local files (scheme "file", which includes
 * the server side of Remote/code-server) go through Node byte-range reads, so opening a 10 GB
 * checkpoint reads its header only. Other schemes (virtual workspaces) only offer whole-file
 * reads through vscode.workspace.fs, so those are read whole, under a size limit.
 */
import * as vscode from 'vscode';
import { InputError, LimitError } from '../engine/errors';
import { MemorySource, type ByteSource, type FileStore } from '../engine/io';
import { NodeFileSource } from '../node/files';

/** workspace.fs.readFile has no ranges: a remote file is held in memory whole, so cap it. */
const MAX_WHOLE_FILE_BYTES = 1 << 30;

export async function openUri(uri: vscode.Uri): Promise<ByteSource> {
  if (uri.scheme === 'file') return NodeFileSource.open(uri.fsPath);
  const name = uri.toString(true);
  let stat: vscode.FileStat;
  try {
    stat = await vscode.workspace.fs.stat(uri);
  } catch {
    throw new InputError(name, 'does not exist or cannot be read');
  }
  if (stat.type & vscode.FileType.Directory) throw new InputError(name, 'is a folder, not a file');
  if (stat.size > MAX_WHOLE_FILE_BYTES) {
    throw new LimitError(name, `is ${(stat.size / 2 ** 30).toFixed(1)} GiB; files outside the local file system are read whole and the limit is 1 GiB: open a local copy`);
  }
  return new MemorySource(name, await vscode.workspace.fs.readFile(uri));
}

/** A folder (a model directory) as a FileStore; missing files are null, as the engine expects. */
export class UriFolderStore implements FileStore {
  readonly name: string;
  constructor(private readonly folder: vscode.Uri) {
    this.name = folder.scheme === 'file' ? folder.fsPath : folder.toString(true);
  }

  async open(relativePath: string): Promise<ByteSource | null> {
    const uri = vscode.Uri.joinPath(this.folder, relativePath);
    try {
      const stat = await vscode.workspace.fs.stat(uri);
      if (!(stat.type & vscode.FileType.File)) return null;
    } catch {
      return null;
    }
    return openUri(uri);
  }
}
