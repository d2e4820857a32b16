// esbuild targets, one per host: the extension (Node, CommonJS, `vscode` external), the webview
// (browser) and the CLI (Node, with a shebang). `--watch` rebuilds on change.
import * as esbuild from 'esbuild';

const watch = process.argv.includes('--watch');
const common = { bundle: true, sourcemap: true, logLevel: 'warning', target: 'es2022', legalComments: 'none' };
// dawn.node (the `webgpu` package) is a native addon: it is loaded at run time, never bundled.
const nodeExternal = ['vscode', 'webgpu'];

const targets = [
  { ...common, entryPoints: ['src/extension/extension.ts'], outfile: 'dist/extension.js', platform: 'node', format: 'cjs', external: nodeExternal },
  { ...common, entryPoints: ['webview/main.ts'], outfile: 'dist/webview.js', platform: 'browser', format: 'iife' },
  { ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/cli.js', platform: 'node', format: 'cjs', external: nodeExternal, banner: { js: '#!/usr/bin/env node' } },
].filter((t) => existsEntry(t.entryPoints[0]));

import { existsSync } from 'node:fs';
function existsEntry(p) {
  return existsSync(p);
}

if (watch) {
  for (const t of targets) await (await esbuild.context(t)).watch();
} else {
  await Promise.all(targets.map((t) => esbuild.build(t)));
}
