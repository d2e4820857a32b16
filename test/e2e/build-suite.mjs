// Bundles the extension-host e2e suite (test/e2e/suite) into out/e2e/suite.js; vscode and mocha
// stay external (the host provides vscode; mocha is loaded from node_modules at run time).
import * as esbuild from 'esbuild';

await esbuild.build({
  entryPoints: ['test/e2e/suite/index.ts'],
  outfile: 'out/e2e/suite.js',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'es2022',
  sourcemap: 'inline',
  external: ['vscode', 'mocha', 'webgpu'],
  logLevel: 'warning',
});
