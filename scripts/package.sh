#!/usr/bin/env bash
# npm run package — builds and packs the extension into mamba-scope-<version>.vsix with @vscode/vsce.
# Everything is bundled by esbuild, so no node_modules go in (--no-dependencies); .vscodeignore
# keeps only dist bundles, wasm binaries, media, the bundled model, package.json, README, LICENSE.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
node scripts/copy-wasm.mjs
ARGS=(--no-dependencies --allow-missing-repository)
[ -e LICENSE ] || ARGS+=(--skip-license)
npx vsce package "${ARGS[@]}" "$@"
