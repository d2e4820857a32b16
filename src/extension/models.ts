/**
 * Which model the extension inspects with, and reading it. The choice, in order: the model picked
 * with "Open Model…" in this window, the mambaScope.modelPath setting, the model bundled in
 * assets/. The host parses config.json and tokenizer.json (it tokenizes; the webview never needs
 * the tokenizer) and reads the weights as float32 only when the webview needs them: once per model.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { InputError } from '../engine/errors';
import { openCheckpoint } from '../engine/formats/checkpoint';
import { SafetensorsFile, type TensorStore } from '../engine/formats/safetensors';
import { sha256Hex } from '../engine/annotations/sha256';
import { CONFIG_FILE, isLanguageModelConfig, readConfig, withGatedNorm, type GatedNorm, type LanguageModelConfig } from '../engine/model/config';
import { decodeUtf8, readAll } from '../engine/io';
import { MambaTokenizer } from '../engine/tokenizer';
import type { LoadModelParams, Progress, TensorMessage } from '../protocol';
import { openUri, UriFolderStore } from './files';
import { weightMessage, weightsMessage } from './messages';
import { readSettings } from './settings';

export const BUNDLED_MODEL_DIR = 'assets/mamba1-demo';
const RECENT_KEY = 'mambaScope.recentModels';
const MAX_RECENT = 8;

export interface ModelRef {
  /** A folder or a .safetensors file. */
  readonly uri: vscode.Uri;
  readonly label: string;
  readonly bundled: boolean;
}

/** A model ready to tokenize, whose weights are read on demand. */
export class HostModel {
  private constructor(
    readonly ref: ModelRef,
    readonly norm: GatedNorm,
    readonly config: LanguageModelConfig,
    readonly tokenizer: MambaTokenizer,
    private readonly checkpoint: TensorStore,
    /** SHA-256 of config.json and tokenizer.json as stored: what annotation files record. */
    readonly hashes: { readonly config: string; readonly tokenizer: string },
  ) {}

  /** The folder and the gated norm: the same weights under the other norm are another model to the panel. */
  get id(): string {
    return modelId(this.ref, this.norm);
  }

  static async open(ref: ModelRef, norm: GatedNorm): Promise<HostModel> {
    const isFile = ref.uri.path.endsWith('.safetensors');
    const folder = isFile ? vscode.Uri.joinPath(ref.uri, '..') : ref.uri;
    const files = new UriFolderStore(folder);
    const config = withGatedNorm(await readConfig(files), norm);
    if (!isLanguageModelConfig(config)) {
      throw new InputError(files.name, 'holds a simplified seed block, which has no tokenizer: inspect it with the CLI (mamba-scope run-block)');
    }
    const checkpoint = isFile ? await SafetensorsFile.open(await openUri(ref.uri)) : await openCheckpoint(files);
    const tokenizerSource = await files.open('tokenizer.json');
    if (!tokenizerSource) throw new InputError(files.name, 'has no tokenizer.json: Mamba Scope needs it to turn text into token ids');
    const tokenizerBytes = await readAll(tokenizerSource);
    const tokenizer = MambaTokenizer.fromJson(decodeUtf8(tokenizerBytes, tokenizerSource.name), tokenizerSource.name);
    const configSource = await files.open(CONFIG_FILE);
    const hashes = { config: sha256Hex(configSource ? await readAll(configSource) : ''), tokenizer: sha256Hex(tokenizerBytes) };
    return new HostModel(ref, norm, config, tokenizer, checkpoint, hashes);
  }

  /** The loadModel message: the checkpoint's tensors (or, for a model too large to send at once, its backbone) and the vocabulary. */
  weights(signal: AbortSignal, progress: (p: Progress) => void): Promise<LoadModelParams> {
    return weightsMessage({ id: this.id, label: this.ref.label, config: this.config, tokenizer: this.tokenizer, checkpoint: this.checkpoint }, signal, progress);
  }

  /** One tensor, as the panel asks for it (a streamed model's layers). */
  weight(name: string): Promise<TensorMessage> {
    if (!this.checkpoint.info(name)) throw new InputError(this.checkpoint.name, `has no tensor named "${name}"`);
    return weightMessage(this.checkpoint, name);
  }
}

export class Models implements vscode.Disposable {
  private picked: ModelRef | undefined;
  private cached: Promise<HostModel> | undefined;
  private cachedId: string | undefined;
  private readonly changed = new vscode.EventEmitter<ModelRef>();
  readonly onDidChange = this.changed.event;
  private readonly subscription: vscode.Disposable;

  constructor(private readonly context: vscode.ExtensionContext) {
    // A changed setting is a new explicit choice: it wins over an earlier "Open Model…".
    this.subscription = vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('mambaScope.modelPath')) {
        this.picked = undefined;
        this.changed.fire(this.current());
      } else if (e.affectsConfiguration('mambaScope.mamba2GatedNorm')) {
        this.changed.fire(this.current());
      }
    });
  }

  dispose(): void {
    this.subscription.dispose();
    this.changed.dispose();
  }

  bundled(): ModelRef {
    return { uri: vscode.Uri.joinPath(this.context.extensionUri, BUNDLED_MODEL_DIR), label: 'mamba1-demo (bundled)', bundled: true };
  }

  current(): ModelRef {
    if (this.picked) return this.picked;
    const setting = readSettings().modelPath;
    return setting ? refFromPath(setting) : this.bundled();
  }

  /** The current model, opened once and reused until the choice changes. */
  get(): Promise<HostModel> {
    const ref = this.current();
    const norm = readSettings().mamba2GatedNorm;
    const id = modelId(ref, norm);
    if (!this.cached || this.cachedId !== id) {
      this.cachedId = id;
      this.cached = HostModel.open(ref, norm);
      // A failed open is not cached: fixing the folder and retrying must work.
      this.cached.catch(() => {
        if (this.cachedId === id) this.cached = this.cachedId = undefined;
      });
    }
    return this.cached;
  }

  async use(ref: ModelRef): Promise<HostModel> {
    this.picked = ref;
    const model = await this.get();
    if (!ref.bundled) await this.remember(ref);
    this.changed.fire(ref);
    return model;
  }

  recent(): ModelRef[] {
    const stored = this.context.globalState.get<string[]>(RECENT_KEY, []);
    return stored.map((s) => refFromUri(vscode.Uri.parse(s)));
  }

  private async remember(ref: ModelRef): Promise<void> {
    const key = ref.uri.toString();
    const list = [key, ...this.context.globalState.get<string[]>(RECENT_KEY, []).filter((s) => s !== key)].slice(0, MAX_RECENT);
    await this.context.globalState.update(RECENT_KEY, list);
  }
}

function modelId(ref: ModelRef, norm: GatedNorm): string {
  return norm === 'mamba_ssm' ? ref.uri.toString() : `${ref.uri.toString()}#norm=${norm}`;
}

/** The setting's path: absolute, ~-relative, or relative to the first workspace folder. */
function refFromPath(p: string): ModelRef {
  const home = process.env.HOME ?? '';
  const expanded = p.startsWith('~/') && home ? path.join(home, p.slice(2)) : p;
  const base = vscode.workspace.workspaceFolders?.[0]?.uri;
  const uri = path.isAbsolute(expanded) || !base ? vscode.Uri.file(expanded) : vscode.Uri.joinPath(base, expanded);
  return refFromUri(uri);
}

export function refFromUri(uri: vscode.Uri): ModelRef {
  const parts = uri.path.split('/').filter(Boolean);
  const label = uri.path.endsWith('.safetensors') ? parts.slice(-2).join('/') : (parts.at(-1) ?? uri.toString());
  return { uri, label, bundled: false };
}
