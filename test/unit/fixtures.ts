/** Paths and loaders for the fixtures copied from ../shared/fixtures into test/fixtures. */
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/engine/formats/safetensors';
import { NodeFileSource } from '../../src/node/files';

export const FIXTURES = path.join(__dirname, '..', 'fixtures');
export const fixture = (...parts: string[]) => path.join(FIXTURES, ...parts);

export async function openSafetensors(file: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(await NodeFileSource.open(file));
}
