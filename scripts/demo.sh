#!/usr/bin/env bash
# npm run demo — a real VS Code (code-server) on 127.0.0.1 with Mamba Scope installed from a
# freshly built .vsix, the bundled model, and a sample opened and inspected as soon as a browser
# connects. Prints the URL; runs until Ctrl-C. A fresh clone needs only Node >= 20 and npm: the
# first run installs the npm packages, code-server's build toolchain (apt, as root) and
# code-server + Node 24 from npm (~4 min on 2 cores, cached in node_modules/ and .vscode-e2e/).
# Env: PORT (default 8080), SAMPLE (default demo0.py).
set -euo pipefail
T0=$(date +%s)
source "$(dirname "$0")/code-server.sh"
cd "$ROOT"
node scripts/setup.mjs demo
PORT=${PORT:-8080}
SAMPLE=${SAMPLE:-demo0.py}
RUN="$WORK/demo-run"
WS="$WORK/demo-ws"

ensure_code_server
log "build + package"
bash scripts/package.sh --out "$WORK/mamba-scope-demo.vsix" > "$WORK/package.log" 2>&1 || { cat "$WORK/package.log"; exit 1; }
rm -rf "$WS"; mkdir -p "$WS"
cp assets/mamba1-demo/samples/*.py "$WS/" && chmod u+w "$WS"/*.py

trap stop_code_server EXIT INT TERM
# The extension inspects this file on startup (read in its activate()); nothing else sets it.
MAMBA_SCOPE_INSPECT_ON_STARTUP="$WS/$SAMPLE" INSTALL_VSIX="$WORK/mamba-scope-demo.vsix" \
  start_code_server "$PORT" "$RUN" "$WS"
URL="http://127.0.0.1:$PORT/?folder=$WS"
echo
echo "  Mamba Scope demo: open  $URL"
echo "  ($SAMPLE opens and is inspected with the bundled mamba1-demo model once the window loads;"
echo "   the webview needs WebGPU for the GPU backend: Chrome/Chromium, or it falls back to WebGL/wasm)"
echo "  Ctrl-C stops it. Logs: $RUN/code-server.log"
echo
wait "$CS_PID"
