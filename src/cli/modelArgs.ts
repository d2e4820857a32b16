/**
 * Resolving `--model` for the CLI commands: a model folder, a file inside one, or (when absent)
 * the small trained model that ships with the extension.
 */
import { existsSync, promises as fs, statSync } from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../engine/errors';
import { loadModelFolder, type LoadedModel } from '../engine/model/load';
import type { Precision } from '../engine/model/params';
import { MambaTokenizer } from '../engine/tokenizer';
import { NodeFolderStore } from '../node/files';

/** dist/cli.js and src/cli/*.ts both sit two levels below the package root. */
export function bundledModelDir(): string {
  const candidates = [path.join(__dirname, '..', 'assets', 'mamba1-demo'), path.join(__dirname, '..', '..', 'assets', 'mamba1-demo')];
  const dir = candidates.find((d) => existsSync(path.join(d, 'config.json')));
  if (!dir) throw new InputError('bundled model', `not found (looked in ${candidates.join(', ')}); pass --model <dir>`);
  return dir;
}

export function modelDir(arg: string | undefined): string {
  if (arg === undefined) return bundledModelDir();
  let stat;
  try {
    stat = statSync(arg);
  } catch {
    throw new InputError(arg, 'does not exist');
  }
  return stat.isDirectory() ? arg : path.dirname(arg);
}

export async function loadModelArg<P extends Precision>(arg: string | undefined, precision: P): Promise<{ dir: string; model: LoadedModel<P> }> {
  const dir = modelDir(arg);
  return { dir, model: await loadModelFolder(new NodeFolderStore(dir), precision) };
}

export async function loadTokenizer(dir: string): Promise<MambaTokenizer> {
  const file = path.join(dir, 'tokenizer.json');
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    throw new InputError(dir, 'has no tokenizer.json, which reading a text sample needs');
  }
  return MambaTokenizer.fromJson(text, file);
}

export async function readTextFile(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    throw new InputError(file, 'cannot be read');
  }
}

export async function writeOutput(file: string, bytes: Uint8Array): Promise<void> {
  try {
    await fs.writeFile(file, bytes);
  } catch (e) {
    throw new InputError(file, `cannot be written: ${e instanceof Error ? e.message : String(e)}`);
  }
}
