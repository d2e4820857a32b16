/**
 * Prepares the folder the e2e suite opens (npx tsx test/e2e/workspace.ts <dir>): the bundled
 * model's held-out samples, an empty file, a mamba-dump/1 file and its bf16 run, a .npy written from that dump's
 * layer-0 Δ with the engine's encoder, the mamba1-tiny model folder (a second model to switch to),
 * the long fixture's 32k-token text and Jamba's model (a hybrid).
 */
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/engine/formats/safetensors';
import { encodeNpy } from '../../src/engine/formats/npy';
import { MemorySource } from '../../src/engine/io';

async function main(dir: string | undefined): Promise<void> {
  if (!dir) throw new Error('usage: tsx test/e2e/workspace.ts <dir>');
  const root = join(__dirname, '..', '..');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(root, 'assets/mamba1-demo/samples'), dir, { recursive: true });
  writeFileSync(join(dir, 'empty.py'), '');
  const dumpPath = join(root, 'test/fixtures/dumps/mamba1-sample1.safetensors');
  cpSync(dumpPath, join(dir, 'mamba1-sample1.safetensors'));
  cpSync(join(root, 'test/fixtures/dumps/mamba1-sample1-bf16.safetensors'), join(dir, 'mamba1-sample1-bf16.safetensors'));
  cpSync(join(root, 'test/fixtures/mamba1-tiny'), join(dir, 'mamba1-tiny'), { recursive: true });
  // 32,768 tokens for mamba1-tiny's tokenizer: the long-context test (issue 13).
  cpSync(join(root, 'test/fixtures/long/text-32k.py'), join(dir, 'text-32k.py'));
  cpSync(join(root, 'test/fixtures/families/jamba'), join(dir, 'jamba'), { recursive: true });
  const dump = await SafetensorsFile.open(new MemorySource(dumpPath, readFileSync(dumpPath)));
  writeFileSync(join(dir, 'delta.npy'), encodeNpy(await dump.readFloat('layers.0.delta', 'float32')));
  // The copies keep the source's read-only mode; the workspace is there to be edited.
  for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' })) chmodSync(join(dir, f), statSync(join(dir, f)).isDirectory() ? 0o755 : 0o644);
}

void main(process.argv[2]);
