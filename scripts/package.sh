#!/usr/bin/env bash
# npm run package — builds and packs the extension into mamba-scope-<version>.vsix with @vscode/vsce.
# Everything is bundled by esbuild, so no node_modules go in (--no-dependencies); .vscodeignore
# keeps only dist bundles, wasm binaries, media, the bundled model, package.json, README, LICENSE.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
node scripts/copy-wasm.mjs
# The README's images are relative links into docs/images/, which the .vsix carries: keep them
# relative (there is no public repository URL to rewrite them to).
ARGS=(--no-dependencies --allow-missing-repository --no-rewrite-relative-links)
[ -e LICENSE ] || ARGS+=(--skip-license)
npx vsce package "${ARGS[@]}" "$@"
