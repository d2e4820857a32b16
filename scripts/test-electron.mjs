// npm run test:electron — the same extension-host suite as npm run test:e2e (out/e2e/suite.js),
// under VS Code desktop via @vscode/test-electron. It downloads VS Code from
// update.code.visualstudio.com on first use (cached in .vscode-e2e/vscode-test/), so it needs that host to be
// reachable and a display (run it under xvfb-run on a headless Linux). Where VS Code cannot be
// downloaded, npm run test:e2e runs the suite in code-server instead.
// Env: VSCODE_VERSION (default "stable").
import { execSync } from 'node:child_process';
import { join } from 'node:path';
import { runTests } from '@vscode/test-electron';

const root = join(import.meta.dirname, '..');
const run = (cmd) => execSync(cmd, { cwd: root, stdio: 'inherit' });
run('npm run --silent build');
run('node scripts/copy-wasm.mjs');
run('node test/e2e/build-suite.mjs');
const cache = join(root, '.vscode-e2e');
const ws = join(cache, 'electron-ws');
run(`npx tsx test/e2e/workspace.ts "${ws}"`);

try {
  await runTests({
    version: process.env.VSCODE_VERSION ?? 'stable',
    cachePath: join(cache, 'vscode-test'),
    extensionDevelopmentPath: root,
    extensionTestsPath: join(root, 'out', 'e2e', 'suite.js'),
    launchArgs: [ws, '--disable-extensions', '--disable-workspace-trust', '--enable-unsafe-webgpu'],
  });
} catch (e) {
  console.error(`test:electron failed: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
}
