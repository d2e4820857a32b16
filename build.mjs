// esbuild targets, one per host: the extension (Node, CommonJS, `vscode` external), the webview
// (browser) and the CLI (Node, with a shebang); then tfjs's .wasm files next to them, for the
// wasm backend of the webview and the CLI. `--watch` rebuilds on change; `--cli` builds the CLI
// alone (the tests of dist/cli.js build it first, so they never run a stale bundle).
import * as esbuild from 'esbuild';
import { chmodSync } from 'node:fs';
import './scripts/copy-wasm.mjs';

const watch = process.argv.includes('--watch');
const cliOnly = process.argv.includes('--cli');
const common = { bundle: true, sourcemap: true, logLevel: 'error', target: 'es2022', legalComments: 'none' };
// dawn.node (the `webgpu` package) is a native addon: it is loaded at run time, never bundled.
const nodeExternal = ['vscode', 'webgpu'];
// tfjs backends register themselves on import. Their "main" (the Node bundle) is not listed in
// their package.json "sideEffects", so esbuild would drop `import '@tensorflow/tfjs-backend-cpu'`;
// their ES "module" entry is listed, so resolve that first, as the browser build does.
const nodeMainFields = ['module', 'main'];

// The attention worker is bundled on its own and embedded in the webview bundle as text: a
// webview can start a worker only from a blob: URL (its scripts come from another origin).
// Rebuilt with the webview bundle, also in --watch mode when the webview's files change.
const attentionWorkerSource = {
  name: 'attention-worker-source',
  setup(build) {
    build.onResolve({ filter: /^attention-worker-source$/ }, () => ({ path: 'attention-worker-source', namespace: 'worker' }));
    build.onLoad({ filter: /.*/, namespace: 'worker' }, async () => {
      const worker = await esbuild.build({ ...common, sourcemap: false, entryPoints: ['webview/analysis/attentionWorker.ts'], platform: 'browser', format: 'iife', write: false, metafile: true });
      return { contents: worker.outputFiles[0].text, loader: 'text', watchFiles: Object.keys(worker.metafile.inputs) };
    });
  },
};

const allTargets = [
  { ...common, entryPoints: ['src/extension/extension.ts'], outfile: 'dist/extension.js', platform: 'node', format: 'cjs', external: nodeExternal, mainFields: nodeMainFields },
  { ...common, entryPoints: ['webview/main.ts'], outfile: 'dist/webview.js', platform: 'browser', format: 'iife', plugins: [attentionWorkerSource] },
  { ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/cli.js', platform: 'node', format: 'cjs', external: nodeExternal, mainFields: nodeMainFields, banner: { js: '#!/usr/bin/env node' } },
];

const targets = cliOnly ? allTargets.filter((t) => t.outfile === 'dist/cli.js') : allTargets;

if (watch) {
  for (const t of targets) await (await esbuild.context(t)).watch();
} else {
  await Promise.all(targets.map((t) => esbuild.build(t)));
  chmodSync('dist/cli.js', 0o755);
}
