// node scripts/setup.mjs test|demo|e2e — the set-up behind the README's two commands, so a fresh
// clone needs nothing but Node >= 20 and npm. Each step prints one line; when everything is
// already there the whole check takes well under a second (one dpkg-query, two stat calls).
// Plain Node with no imports outside node:, because it runs before node_modules exists.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

// What each entry point needs from Debian, and why: the reason is printed when one is missing.
const CODE_SERVER_TOOLCHAIN = ['build-essential', 'python3', 'libkrb5-dev', 'pkg-config', 'curl'];
const DEBIAN_PACKAGES = {
  // chromium: the webview and e2e tests drive it, and its SwiftShader Vulkan driver gives Dawn
  // (the WebGPU kernel tests in Node) an adapter; libvulkan1: Dawn's Vulkan loader.
  test: ['chromium', 'libvulkan1', ...CODE_SERVER_TOOLCHAIN],
  e2e: ['chromium', ...CODE_SERVER_TOOLCHAIN],
  // The demo serves VS Code to your own browser: only code-server's build needs packages.
  demo: CODE_SERVER_TOOLCHAIN,
};

const purpose = process.argv[2];
if (!(purpose in DEBIAN_PACKAGES)) {
  console.error(`usage: node scripts/setup.mjs ${Object.keys(DEBIAN_PACKAGES).join('|')}`);
  process.exit(2);
}
const T0 = Date.now();
const log = (message) => console.log(`[setup +${((Date.now() - T0) / 1000).toFixed(1)}s] ${message}`);
const fail = (message) => {
  console.error(`[setup] ${message}`);
  process.exit(1);
};

checkNode();
ensureDebianPackages(DEBIAN_PACKAGES[purpose]);
if (purpose !== 'e2e') ensureNpmPackages(); // e2e runs inside npm test, after this step

function checkNode() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20) fail(`Node ${process.versions.node} is too old: Mamba Scope needs Node >= 20.`);
}

/** Installed packages among `names`, read with one dpkg-query call; null off Debian. */
function installedDebianPackages(names) {
  const query = spawnSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Abbrev}\n', ...names], { encoding: 'utf8' });
  if (query.error) return null; // no dpkg-query: not a Debian system
  // Unknown names go to stderr and leave no line; "ii" is installed and configured.
  return new Set(query.stdout.split('\n').filter((line) => /^\S+ ii/.test(line)).map((line) => line.split(' ')[0]));
}

function ensureDebianPackages(names) {
  const installed = installedDebianPackages(names);
  if (installed === null) {
    log(`not a Debian system (no dpkg-query): make sure you have the equivalents of ${names.join(' ')}`);
    return;
  }
  const missing = names.filter((name) => !installed.has(name));
  if (missing.length === 0) {
    log(`Debian packages present: ${names.join(' ')}`);
    return;
  }
  const command = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) fail(`missing Debian packages: ${missing.join(' ')}. Install them with: sudo ${command}`);
  log(`apt-get: installing ${missing.join(' ')} (a minute or two)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', ...missing]]) {
    const run = spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
    if (run.status !== 0) fail(`apt-get ${args[0]} failed (exit ${run.status ?? run.signal}); run: ${command}`);
  }
  log(`apt-get: installed ${missing.join(' ')}`);
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return null;
  }
}

/**
 * `npm ci` when node_modules is absent or older than package-lock.json. npm writes
 * node_modules/.package-lock.json at every install, so its time is the install's time.
 */
function ensureNpmPackages() {
  const lock = mtime(join(ROOT, 'package-lock.json'));
  const installed = mtime(join(ROOT, 'node_modules', '.package-lock.json'));
  if (installed !== null && lock !== null && installed >= lock) {
    log('npm packages up to date (node_modules is newer than package-lock.json)');
    return;
  }
  log(`npm ci: ${installed === null ? 'node_modules is absent' : 'package-lock.json changed since the last install'} (about a minute)`);
  const run = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: ROOT, stdio: 'inherit' });
  if (run.status !== 0) fail(`npm ci failed (exit ${run.status ?? run.signal}); see the lines above`);
  log('npm ci: done');
}
