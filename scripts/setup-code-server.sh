#!/usr/bin/env bash
# Builds code-server 4.100.3 (VS Code 1.100.3, the newest that runs on Node 20) and playwright-core in a
# harness folder outside the repository, offline-safe, and reuses it. Recipe: docs/architecture.md "A real VS Code offline".
#   - @vscode/ripgrep's postinstall downloads rg: seed its cache with Debian's /usr/bin/rg.
#   - node-gyp downloads Node headers: npm_config_nodedir=/usr uses the local ones.
#   - node-pty's postinstall runs `npx node-gyp`: npm_config_yes=true (and unsafe_perm as root).
# Prints nothing but progress; the harness path is $RLORA_E2E_HARNESS or the default below.
set -euo pipefail
CS_VERSION=4.100.3
PW_VERSION=1.65.1
RG_CACHE_NAME=vscode-ripgrep-cache-1.15.11
RG_ASSET=ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz
HARNESS=${RLORA_E2E_HARNESS:-${XDG_CACHE_HOME:-$HOME/.cache}/riemannlora-lab/e2e-harness-$CS_VERSION}
STAMP="$HARNESS/.ready"
if [ -f "$STAMP" ] && [ -x "$HARNESS/node_modules/.bin/code-server" ]; then exit 0; fi
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
command -v rg >/dev/null || { echo "setup-code-server.sh: ripgrep (rg) is required: apt-get install ripgrep" >&2; exit 1; }
log "building code-server $CS_VERSION into $HARNESS (first time only, about a minute)"
mkdir -p "$HARNESS"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/$RG_CACHE_NAME" "$TMP/rg"
cp "$(command -v rg)" "$TMP/rg/rg"
tar -C "$TMP/rg" -czf "$TMP/$RG_CACHE_NAME/$RG_ASSET" rg
cd "$HARNESS"
[ -f package.json ] || echo '{"name":"rlora-e2e-harness","private":true}' > package.json
TMPDIR="$TMP" npm_config_nodedir=/usr npm_config_yes=true npm_config_unsafe_perm=true \
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
  npm install --no-audit --no-fund --loglevel=error --foreground-scripts=false \
  "code-server@$CS_VERSION" "playwright-core@$PW_VERSION" >"$TMP/npm.log" 2>&1 || {
    tail -40 "$TMP/npm.log" >&2
    echo "setup-code-server.sh: npm install of code-server failed (log above)" >&2
    exit 1
  }
"$HARNESS/node_modules/.bin/code-server" --version >/dev/null
date -u +%FT%TZ > "$STAMP"
log "code-server ready"
