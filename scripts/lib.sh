# Shared helpers for the gate scripts (sourced, not run).
#
#   ci_tools           a Python venv with the pinned tools of scripts/ci-requirements.txt, on PATH
#   pinned_buf         the buf of package.json / package-lock.json in node_modules (npm ci when it is
#                      missing or stale); sets BUF to it
#   start_server VAR [ENV=VALUE ...]
#                      starts the debug binary on a free port; sets VAR to its address and
#                      SERVER_PIDS; the database is CRM_DATABASE_URL from the arguments (SQLite in a
#                      temporary directory by default); the server is stopped on exit
#   skip_or_fail MSG   a missing tool: SKIPPED (exit 0) locally, a failure under CI=true
#   pg_answers URL     whether PostgreSQL at URL answers (psql)
#   redact_url URL     the URL with its password replaced by ***, for messages
#
# It also exports CRM_TEST_DATABASE_URL: the caller's (.ci/run sets its own when it starts a
# throwaway cluster), else CRM_TEST_DATABASE_URL_DEFAULT, the PostgreSQL that cargo test's harness
# and the README use when none is named. Every gate that needs PostgreSQL reads it from here, so a
# gate run directly under CI=true finds the same database as cargo test.

CRM_TEST_DATABASE_URL_DEFAULT="postgres://postgres@127.0.0.1:5432/test"
export CRM_TEST_DATABASE_URL="${CRM_TEST_DATABASE_URL:-$CRM_TEST_DATABASE_URL_DEFAULT}"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CRM_BIN=${CRM_BIN:-$ROOT/target/debug/crm-service}
WORK_DIR=$(mktemp -d /tmp/crm-gate.XXXXXX)
SERVER_PIDS=()

_gate_cleanup() {
  for pid in "${SERVER_PIDS[@]:-}"; do
    # `|| true`: wait returns the server's status (143 after SIGTERM), which under set -e would
    # abort this cleanup half-way (leaving later servers running and WORK_DIR behind).
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }
  done
  rm -rf "$WORK_DIR"
}
trap _gate_cleanup EXIT

gate_log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }

skip_or_fail() {
  if [ "${CI:-}" = "true" ]; then
    gate_log "FAIL: $*"
    exit 1
  fi
  gate_log "SKIPPED: $*"
  exit 0
}

pg_answers() {
  command -v psql >/dev/null && psql "$1" -XAtqc 'select 1' >/dev/null 2>&1
}

redact_url() {
  sed -E 's#^([a-z]+://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"
}

ci_tools() {
  local venv="$ROOT/target/ci-venv"
  local stamp="$venv/.requirements"
  if ! cmp -s "$ROOT/scripts/ci-requirements.txt" "$stamp" 2>/dev/null; then
    gate_log "installing the pinned Python tools into $venv"
    python3 -m venv "$venv" >/dev/null 2>&1 || skip_or_fail "python3 -m venv is unavailable"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/ci-requirements.txt" \
      || skip_or_fail "pip could not install scripts/ci-requirements.txt"
    cp "$ROOT/scripts/ci-requirements.txt" "$stamp"
  fi
  export PATH="$venv/bin:$PATH"
}

pinned_buf() {
  command -v node >/dev/null 2>&1 || skip_or_fail "node is not installed (needed for the pinned buf)"
  command -v npm >/dev/null 2>&1 || skip_or_fail "npm is not installed (needed for the pinned buf)"
  # The installed buf is stale when npm's own record of the tree is missing or older than the lock
  # file, or when its version is not the one package.json pins.
  local pinned installed
  pinned=$(cd "$ROOT" && node -p 'require("./package.json").devDependencies["@bufbuild/buf"]')
  installed=$(cd "$ROOT" && node -p 'try { require("./node_modules/@bufbuild/buf/package.json").version } catch (e) { "" }')
  if [ ! -x "$ROOT/node_modules/.bin/buf" ] || [ ! -f "$ROOT/node_modules/.package-lock.json" ] \
    || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ] || [ "$installed" != "$pinned" ]; then
    gate_log "npm ci (@bufbuild/buf $pinned)"
    # npm 11 warns that buf's postinstall script is not in allowScripts; the binary comes from the
    # optional per-platform package, so buf works without that script.
    if ! (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) >"$WORK_DIR/npm-ci.log" 2>&1; then
      cat "$WORK_DIR/npm-ci.log" >&2
      skip_or_fail "npm ci could not install @bufbuild/buf $pinned"
    fi
  fi
  # What `npx buf` runs, called directly: npx would fetch an unrelated package named "buf" if the
  # local install were missing.
  BUF="$ROOT/node_modules/.bin/buf"
}

ensure_binary() {
  if [ ! -x "$CRM_BIN" ]; then
    gate_log "building $CRM_BIN"
    (cd "$ROOT" && cargo build -q --bin crm-service)
  fi
}

start_server() {
  # Locals are prefixed: printf -v below would set a local instead if the caller's VAR shared a name.
  local _ss_var=$1
  shift
  ensure_binary
  local _ss_n=${#SERVER_PIDS[@]}
  local _ss_out="$WORK_DIR/server-$_ss_n.out"
  # `exec`: $! must be the server itself, not a subshell whose death would orphan the server.
  (cd "$WORK_DIR" && exec env CRM_DATABASE_URL="sqlite://$WORK_DIR/crm-$_ss_n.db" CRM_PURGE_INTERVAL=0 \
    CRM_JWT_SECRET="gate-secret-0123456789abcdef0123456789" "$@" \
    "$CRM_BIN" serve --listen 127.0.0.1:0 >"$_ss_out" 2>"$WORK_DIR/server-$_ss_n.err") &
  SERVER_PIDS+=("$!")
  local _ss_addr=""
  for _ in $(seq 1 200); do
    _ss_addr=$(sed -n 's/^crm-service listening on //p' "$_ss_out" 2>/dev/null | head -n 1)
    [ -n "$_ss_addr" ] && break
    sleep 0.05
  done
  if [ -z "$_ss_addr" ]; then
    cat "$WORK_DIR/server-$_ss_n.err" >&2
    gate_log "FAIL: the server did not start"
    exit 1
  fi
  printf -v "$_ss_var" '%s' "$_ss_addr"
}

# A token for the server started by start_server (same secret, unless the caller overrode it).
mint_token() {
  env CRM_JWT_SECRET="gate-secret-0123456789abcdef0123456789" "$CRM_BIN" token "$@"
}
