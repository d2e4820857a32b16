/**
 * Resolving `--model` for the CLI commands: a model folder, a file inside one, or (when absent)
 * the small trained model that ships with the extension.
 */
import { existsSync, promises as fs, statSync } from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../engine/errors';
import { openCheckpoint } from '../engine/formats/checkpoint';
import { readConfig, withGatedNorm, type GatedNorm, type ModelConfig } from '../engine/model/config';
import type { LoadedModel } from '../engine/model/graph';
import { loadModel } from '../engine/model/load';
import { SafetensorsFile, safetensorsPieces, type NamedTensor, type TensorStore } from '../engine/formats/safetensors';
import type { Precision } from '../engine/model/params';
import { MambaTokenizer } from '../engine/tokenizer';
import { NodeFileSource, NodeFolderStore } from '../node/files';
import { intList, optional, positiveInt, UsageError, type ParsedArgs } from './args';

/** dist/cli.js and src/cli/*.ts both sit two levels below the package root. */
export function bundledModelDir(): string {
  const candidates = [path.join(__dirname, '..', 'assets', 'mamba1-demo'), path.join(__dirname, '..', '..', 'assets', 'mamba1-demo')];
  const dir = candidates.find((d) => existsSync(path.join(d, 'config.json')));
  if (!dir) throw new InputError('bundled model', `not found (looked in ${candidates.join(', ')}); pass --model <dir>`);
  return dir;
}

/** The model folder of `--model`, and the weights file when a file was named. */
export function modelLocation(arg: string | undefined): { dir: string; weights?: string } {
  if (arg === undefined) return { dir: bundledModelDir() };
  let stat;
  try {
    stat = statSync(arg);
  } catch {
    throw new InputError(arg, 'does not exist');
  }
  return stat.isDirectory() ? { dir: arg } : { dir: path.dirname(arg), weights: arg };
}

export function modelDir(arg: string | undefined): string {
  return modelLocation(arg).dir;
}

/**
 * A folder (config.json + checkpoint), or one .safetensors file with config.json beside it, opened
 * but not read: its config (with `norm`'s Mamba-2 gated norm) and its tensors by byte range.
 */
export async function openModelArg(arg: string | undefined, norm: GatedNorm = 'mamba_ssm'): Promise<{ dir: string; config: ModelConfig; store: TensorStore }> {
  const { dir, weights } = modelLocation(arg);
  const folder = new NodeFolderStore(dir);
  const config = withGatedNorm(await readConfig(folder), norm);
  const store = weights === undefined ? await openCheckpoint(folder) : await SafetensorsFile.open(await NodeFileSource.open(weights));
  return { dir, config, store };
}

/** The same, read whole in `precision`. */
export async function loadModelArg<P extends Precision>(arg: string | undefined, precision: P, norm: GatedNorm = 'mamba_ssm'): Promise<{ dir: string; model: LoadedModel<P> }> {
  const { dir, config, store } = await openModelArg(arg, norm);
  return { dir, model: await loadModel(config, store, precision) };
}

/** The sample a command runs: its token ids, their pieces, and where they came from (for messages). */
export interface Sample {
  readonly ids: Int32Array;
  readonly pieces: string[];
  /** The text file, or "--ids". */
  readonly source: string;
  readonly textFile?: string;
}

/**
 * --text (tokenized with the model's tokenizer) or --ids, cut to --max-tokens (with a note on
 * stderr), every id checked against the vocabulary.
 */
export async function readSample(args: ParsedArgs, dir: string, vocabSize: number, note: (line: string) => void): Promise<Sample> {
  const textFile = optional(args, 'text');
  const idList = intList(args, 'ids');
  if ((textFile === undefined) === (idList === undefined)) throw new UsageError('give exactly one of --text or --ids');
  let ids: Int32Array;
  let pieces: string[];
  if (textFile !== undefined) {
    ({ ids, pieces } = (await loadTokenizer(dir)).encode(await readTextFile(textFile)));
    if (ids.length === 0) throw new InputError(textFile, 'has no tokens (empty sample)');
  } else {
    ids = Int32Array.from(idList as number[]);
    pieces = [...ids].map(String);
    if (ids.length === 0) throw new UsageError('--ids is empty');
  }
  const maxTokens = positiveInt(args, 'max-tokens');
  if (maxTokens !== undefined && ids.length > maxTokens) {
    note(`note: keeping the first ${maxTokens} of ${ids.length} tokens (--max-tokens)`);
    ids = ids.slice(0, maxTokens);
    pieces = pieces.slice(0, maxTokens);
  }
  const source = textFile ?? '--ids';
  for (const id of ids) if (id < 0 || id >= vocabSize) throw new InputError(source, `token id ${id} is outside the model's ${vocabSize}-token vocabulary`);
  return { ids, pieces, source, ...(textFile !== undefined ? { textFile } : {}) };
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

/**
 * Writes a dump piece by piece (safetensorsPieces), never as one buffer: no 4 GB ceiling, and
 * no second copy of every kept tensor in memory while it is written.
 */
export async function writeDump(file: string, entries: readonly NamedTensor[], metadata: Record<string, string>): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(file, 'w');
    for (const piece of safetensorsPieces(entries, metadata)) await handle.write(piece);
  } catch (e) {
    throw new InputError(file, `cannot be written: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    await handle?.close();
  }
}
