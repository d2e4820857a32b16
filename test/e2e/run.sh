#!/usr/bin/env bash
# npm run test:e2e — the extension in a real VS Code (code-server), offline:
#   1. installs code-server + Node 24 from npm once (cached in .vscode-e2e/, see scripts/code-server.sh)
#   2. builds the extension and the suite, prepares a workspace
#   3. runs the mocha suite inside the real extension host (the same suite as npm run test:electron)
#   4. runs the Playwright UI test (palette → Inspect File → panel pixels → token click → linked views)
# Screenshots: test-results/e2e/*.png. Env: PORT (default 8123), SKIP_UI=1, SKIP_SUITE=1,
# E2E_BACKEND (default wasm: on a CPU-only machine WebGPU is SwiftShader, ~20x slower than wasm
# for this model; the suite still runs one inspection on WebGPU and compares it with wasm).
set -euo pipefail
T0=$(date +%s)
source "$(dirname "$0")/../../scripts/code-server.sh"
cd "$ROOT"
node scripts/setup.mjs e2e   # chromium and code-server's toolchain; npm test has run the npm step
PORT=${PORT:-8123}
RUN="$WORK/e2e-run"
WS="$WORK/e2e-ws"

ensure_code_server
rm -rf test-results/e2e   # screenshots of this run only
log "build"
npm run --silent build
node scripts/copy-wasm.mjs
node test/e2e/build-suite.mjs
npx tsx test/e2e/workspace.ts "$WS"

trap stop_code_server EXIT
export MAMBA_E2E_BACKEND=${E2E_BACKEND:-wasm}   # the WebGPU test needs no switch: Chromium runs with --enable-unsafe-webgpu
CS_SETTINGS="{\"mambaScope.backend\": \"$MAMBA_E2E_BACKEND\"}" start_code_server "$PORT" "$RUN" "$WS" --vscode-option enable-smoke-test-driver
export CS_BASE="http://127.0.0.1:$PORT" WS_DIR="$WS" EXT_DIR="$ROOT" RUN_DIR="$RUN"
RC=0
if [ -z "${SKIP_SUITE:-}" ]; then
  log "extension-host suite (out/e2e/suite.js)"
  node test/e2e/driver.mjs suite || RC=1
fi
if [ -z "${SKIP_UI:-}" ]; then
  if [ -z "${SKIP_SUITE:-}" ]; then
    # A fresh VS Code as a new user sees it: the suite left editors open, exports and another model.
    stop_code_server
    npx tsx test/e2e/workspace.ts "$WS"
    CS_SETTINGS="{\"mambaScope.backend\": \"$MAMBA_E2E_BACKEND\"}" start_code_server "$PORT" "$RUN" "$WS" --vscode-option enable-smoke-test-driver
  fi
  log "UI test (Playwright)"
  node test/e2e/driver.mjs ui || RC=1
fi
log "done, rc=$RC (screenshots in test-results/e2e/)"
exit $RC
