/**
 * The tests that run dist/cli.js build it first (build.mjs --cli, about a second), so they test
 * the sources as they are, never whatever bundle an earlier build left there.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
export const BUILT_CLI = path.join(ROOT, 'dist', 'cli.js');

let built = false;

/** For a mocha `before` hook: builds once per test run. */
export function buildCli(): void {
  if (built) return;
  execFileSync(process.execPath, ['build.mjs', '--cli'], { cwd: ROOT, stdio: 'inherit' });
  built = true;
}
