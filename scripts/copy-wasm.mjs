// Copies tfjs-backend-wasm's .wasm binaries into dist/wasm/, the folder the webview's CSP
// (connect-src) and localResourceRoots allow and that setWasmPaths points at. Only the
// non-threaded files: a webview is not cross-origin isolated, so the threaded one never loads.
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const from = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
const to = join(dirname(new URL(import.meta.url).pathname), '..', 'dist', 'wasm');
mkdirSync(to, { recursive: true });
for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm']) copyFileSync(join(from, f), join(to, f));
