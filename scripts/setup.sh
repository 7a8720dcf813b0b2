#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (and fast when already done):
#   1. Debian packages: Chromium (e2e), ripgrep and build headers (code-server's native modules).
#   2. npm ci (node_modules from the committed lock file).
#   3. .venv: the worker's virtual environment, torch pinned through native-worker/constraints.txt,
#      the worker installed editable with its dev extras.
#   4. code-server 4.100.3 (a real VS Code for the e2e tests), built offline, cached outside the repo.
# Flags: --no-e2e skips Chromium and code-server (the demo and the benchmarks do not need them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WANT_E2E=1
for arg in "$@"; do
  case "$arg" in
    --no-e2e) WANT_E2E=0 ;;
    *) echo "setup.sh: unknown option $arg (known: --no-e2e)" >&2; exit 2 ;;
  esac
done
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
hash_files() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# 1. Debian packages ----------------------------------------------------------------------------
APT_PKGS=(build-essential python3 python3-venv libkrb5-dev ripgrep git)
[ "$WANT_E2E" = 1 ] && APT_PKGS+=(chromium fonts-dejavu-core)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Node packages ------------------------------------------------------------------------------
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then echo "setup.sh: Node >= 20.19 is required (found $(node --version))" >&2; exit 1; fi
NPM_STAMP=node_modules/.rlora-setup
npm_hash=$(hash_files package-lock.json)
if ! stamp_ok "$NPM_STAMP" "$npm_hash"; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_hash" > "$NPM_STAMP"
fi

# 3. Python virtual environment -----------------------------------------------------------------
PY=${RLORA_BASE_PYTHON:-python3}
VENV=.venv
PY_STAMP=$VENV/.rlora-setup
py_hash=$(hash_files native-worker/pyproject.toml native-worker/constraints.txt)
if ! stamp_ok "$PY_STAMP" "$py_hash"; then
  log "python venv ($VENV) with torch from native-worker/constraints.txt"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -c native-worker/constraints.txt -e "native-worker[dev]"
  echo "$py_hash" > "$PY_STAMP"
fi

# 4. code-server (real VS Code for e2e), cached outside the repository --------------------------
if [ "$WANT_E2E" = 1 ]; then
  bash scripts/setup-code-server.sh
fi
log "ready"
