import * as assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';

/**
 * Issue 7 item 3, "no code from data": nothing in the project evaluates strings as code, so no
 * file, message or setting can become code. Checked on the sources and, when `npm run build`
 * has produced them (npm test always builds first), on the shipped bundles with their dependencies.
 */
const ROOT = path.join(__dirname, '../..');
const CODE_FROM_STRING = /(?<![\w$.])eval\s*\(|,\s*eval\s*\)|new\s+Function\s*\(|(?<![\w$.])Function\s*\(/g;

function files(dir: string, ext: RegExp): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? files(full, ext) : ext.test(name) ? [full] : [];
  });
}

/**
 * The one known hit: tfjs-backend-wasm embeds Emscripten's worker script as a string, whose
 * Node-only importScripts shim evaluates the worker file. In the webview it is never reached and
 * the CSP (no 'unsafe-eval') would block it anyway.
 */
const ALLOWED_CONTEXT = 'importScripts:function(f){(0,eval)(fs.readFileSync(f,"utf8")';

function offenders(paths: string[]): string[] {
  return paths.flatMap((f) => {
    const text = readFileSync(f, 'utf8');
    return [...text.matchAll(CODE_FROM_STRING)]
      .filter((m) => !text.slice(m.index - 40, m.index + 40).includes(ALLOWED_CONTEXT))
      .map((m) => `${path.relative(ROOT, f)}: ${text.slice(m.index - 30, m.index + 30)}`);
  });
}

describe('formats: no code from data', () => {
  it('no eval or Function constructor in src/ and webview/', () => {
    const sources = [...files(path.join(ROOT, 'src'), /\.ts$/), ...files(path.join(ROOT, 'webview'), /\.ts$/)];
    assert.ok(sources.length > 20);
    assert.deepEqual(offenders(sources), []);
  });

  const dist = path.join(ROOT, 'dist');
  if (existsSync(dist)) {
    it('no eval or Function constructor in the built bundles (extension, webview, CLI)', () => {
      assert.deepEqual(offenders(files(dist, /\.js$/)), []);
    });
  }
});
