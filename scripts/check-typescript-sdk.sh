#!/usr/bin/env bash
# Gate: the TypeScript SDK in clients/typescript.
#   1. `npm ci` from its package-lock.json (when node_modules is missing or older than the lock
#      file), on the machine's Node (20 or later).
#   2. The committed generated code is fresh: regenerate into a temporary directory and diff. Its
#      REASONS list is the service's (src/reason.rs), name for name, in order.
#   3. It compiles (tsc, strict, declarations into dist/), the example too, and `npm pack` ships the
#      compiled entry points and their types; the README's example, compiled in a project of its own
#      that installed the packed tarball, runs against the SQLite server below.
#   4. examples/golden_path.ts (health, a BadRequest naming the field, the deletion lifecycle with
#      ErrorInfo and PreconditionFailure, the event stream read, resumed from a sequence and live,
#      and with --limited-addr a RetryInfo from a server at its limit of calls) passes against a
#      real server on SQLite,
#   5. and on PostgreSQL (CRM_TEST_DATABASE_URL, by default lib.sh's, the same as cargo test's) in a
#      throwaway schema that is dropped at the end. If it does not answer: SKIPPED locally, a
#      failure under CI=true.
# A missing node or npm, or a failing `npm ci`, is SKIPPED locally and a failure under CI=true.
#
#   CRM_BIN=/path/to/crm-service scripts/check-typescript-sdk.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
sdk=$ROOT/clients/typescript

# --- Node and the pinned packages ----------------------------------------------------------------
command -v node >/dev/null 2>&1 || skip_or_fail "node is not installed (the TypeScript SDK needs Node 20 or later)"
command -v npm >/dev/null 2>&1 || skip_or_fail "npm is not installed (needed to install the TypeScript SDK's packages)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  skip_or_fail "node is $(node --version); the TypeScript SDK needs Node 20 or later"
fi
if [ ! -f "$sdk/node_modules/.package-lock.json" ] || [ "$sdk/package-lock.json" -nt "$sdk/node_modules/.package-lock.json" ] \
  || [ "$sdk/package.json" -nt "$sdk/node_modules/.package-lock.json" ]; then
  gate_log "npm ci in clients/typescript (node $(node --version))"
  # npm 11 warns that buf's postinstall script is not in allowScripts; the binary comes from the
  # optional per-platform package, so buf works without that script.
  if ! (cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error) >"$WORK_DIR/npm-ci.log" 2>&1; then
    cat "$WORK_DIR/npm-ci.log" >&2
    skip_or_fail "npm ci could not install clients/typescript/package-lock.json"
  fi
fi

# --- fresh generated code, the service's reasons -------------------------------------------------
# One buf for the repository: the proto gate's (package.json at the root) generates the SDK too.
buf_root=$(node -p "require('$ROOT/package.json').devDependencies['@bufbuild/buf']")
buf_sdk=$(node -p "require('$sdk/package.json').devDependencies['@bufbuild/buf']")
if [ "$buf_root" != "$buf_sdk" ]; then
  gate_log "FAIL: clients/typescript pins @bufbuild/buf $buf_sdk, the repository's package.json $buf_root: pin one"
  exit 1
fi
gate_log "regenerating the SDK to check clients/typescript/src/gen is fresh"
"$sdk/generate.sh" "$WORK_DIR/gen" >/dev/null
if ! diff -r "$WORK_DIR/gen/src/gen" "$sdk/src/gen" >"$WORK_DIR/gen.diff"; then
  head -n 40 "$WORK_DIR/gen.diff" >&2
  gate_log "FAIL: the generated code in clients/typescript/src/gen is stale; run" \
    "'(cd clients/typescript && npm ci && ./generate.sh)' and commit it"
  exit 1
fi
sed -nE 's/^[[:space:]]+([A-Z_]+) => ".*/\1/p' "$ROOT/src/reason.rs" >"$WORK_DIR/reasons.service"
sed -n '/^export const REASONS = {/,/^}/p' "$sdk/src/errors.ts" \
  | sed -nE 's/^[[:space:]]+([A-Z_]+): ".*/\1/p' >"$WORK_DIR/reasons.sdk"
if [ ! -s "$WORK_DIR/reasons.service" ] || ! diff "$WORK_DIR/reasons.service" "$WORK_DIR/reasons.sdk" >"$WORK_DIR/reasons.diff"; then
  cat "$WORK_DIR/reasons.diff" >&2
  gate_log "FAIL: REASONS in clients/typescript/src/errors.ts is not the list of src/reason.rs" \
    "('<' only in the service, '>' only in the SDK)"
  exit 1
fi

# --- compile, and what a package of it ships -----------------------------------------------------
gate_log "tsc: the SDK into clients/typescript/dist, and the example"
if ! (cd "$sdk" && rm -rf dist && node_modules/.bin/tsc -p tsconfig.json && node_modules/.bin/tsc -p tsconfig.examples.json); then
  gate_log "FAIL: the TypeScript SDK does not compile"
  exit 1
fi
(cd "$sdk" && npm pack --dry-run --json --ignore-scripts 2>/dev/null) >"$WORK_DIR/pack.json"
for shipped in dist/index.js dist/index.d.ts dist/gen/crm/v1/index.js dist/gen/google/rpc/error_details_pb.d.ts README.md; do
  if ! node -e 'const [p] = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    process.exit(p.files.some((f) => f.path === process.argv[2]) ? 0 : 1)' "$WORK_DIR/pack.json" "$shipped"; then
    gate_log "FAIL: npm pack of clients/typescript does not ship $shipped (package.json \"files\")"
    exit 1
  fi
done

# --- the golden path against real servers --------------------------------------------------------
run_example() { # LABEL ADDR: the golden path, as a user runs it
  local label=$1 addr=$2 out rep sup
  out="$WORK_DIR/golden_path-${label%% *}.out"
  rep=$(mint_token --tenant ts-gate --user alice --role sales_rep)
  sup=$(mint_token --tenant ts-gate --user bob --role supervisor)
  if ! node "$sdk/dist/examples/golden_path.js" --addr "$addr" --rep-token "$rep" \
    --supervisor-token "$sup" --limited-addr "$limited_addr" >"$out" 2>&1; then
    cat "$out" >&2
    gate_log "FAIL: the TypeScript golden path failed on $label"
    exit 1
  fi
  gate_log "golden_path on $label: $(grep -c '^  ok ' "$out") checks OK"
}

# The RetryInfo scenario needs a server at its limit: one that admits a single call at a time
# sheds the rest of a burst. Its own SQLite database; shedding happens before any database work.
start_server limited_addr CRM_MAX_CONCURRENT_CALLS=1

start_server sqlite_addr
run_example SQLite "$sqlite_addr"

# The README's example as a user gets it: `npm pack`, installed into a project of its own (ESM,
# TypeScript and @types/node at the SDK's versions), compiled and run.
consumer="$WORK_DIR/consumer"
mkdir -p "$consumer"
(cd "$sdk" && npm pack --ignore-scripts --pack-destination "$consumer" >/dev/null 2>&1)
dev() { node -p "require('$sdk/package.json').devDependencies['$1']"; }
cat >"$consumer/package.json" <<JSON
{ "name": "readme-example", "private": true, "type": "module",
  "dependencies": { "crm-client": "file:./$(cd "$consumer" && ls crm-client-*.tgz)",
    "typescript": "$(dev typescript)", "@types/node": "$(dev @types/node)" } }
JSON
cat >"$consumer/tsconfig.json" <<'JSON'
{ "compilerOptions": { "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
    "strict": true, "types": ["node"], "outDir": "out" }, "include": ["readme.ts"] }
JSON
sed -n '/^## Example$/,/^## /p' "$sdk/README.md" | sed -n '/^```ts$/,/^```$/p' | sed '1d;$d' \
  | sed "s/127\\.0\\.0\\.1:50051/$sqlite_addr/" >"$consumer/readme.ts" # the gate's server
if [ ! -s "$consumer/readme.ts" ]; then
  gate_log "FAIL: no \`\`\`ts block under '## Example' in clients/typescript/README.md"
  exit 1
fi
if ! (cd "$consumer" && npm install --no-audit --no-fund --prefer-offline --loglevel=error) >"$WORK_DIR/consumer-npm.log" 2>&1; then
  cat "$WORK_DIR/consumer-npm.log" >&2
  gate_log "FAIL: npm install could not install the packed SDK into a project of its own"
  exit 1
fi
if ! (cd "$consumer" && node_modules/.bin/tsc -p . && CRM_TOKEN=$(mint_token --tenant ts-readme --user alice --role sales_rep) \
  node out/readme.js >"$WORK_DIR/readme.out" 2>&1 && grep -q "^INVALID_FIELD" "$WORK_DIR/readme.out"); then
  cat "$consumer/readme.ts" "$WORK_DIR/readme.out" >&2
  gate_log "FAIL: the README's example does not compile or run against the packed SDK (it should print INVALID_FIELD)"
  exit 1
fi
gate_log "the README's example, from the packed SDK in a project of its own: $(tr -s ' \n' ' ' <"$WORK_DIR/readme.out")"

pg_result="PostgreSQL passed"
if ! pg_answers "$CRM_TEST_DATABASE_URL"; then
  # As cargo test does: locally the PostgreSQL half is SKIPPED with the reason, under CI it fails.
  if command -v psql >/dev/null; then
    psql "$CRM_TEST_DATABASE_URL" -XAtqc 'select 1' 2>&1 >/dev/null | head -n 3 >&2 || true
    why="PostgreSQL at $(redact_url "$CRM_TEST_DATABASE_URL") does not answer (psql's error above)"
  else
    why="psql is not installed (needed to reach PostgreSQL and drop the gate's schema)"
  fi
  if [ "${CI:-}" = "true" ]; then
    gate_log "FAIL: $why (required under CI=true; set CRM_TEST_DATABASE_URL=postgres://...)"
    exit 1
  fi
  gate_log "SKIPPED: $why (set CRM_TEST_DATABASE_URL=postgres://... to run it)"
  pg_result="PostgreSQL SKIPPED"
else
  schema="ts_gate_$(date +%s)_$RANDOM"
  # Stop the servers first (lib.sh's cleanup), then drop the schema they used.
  trap '_gate_cleanup; psql "$CRM_TEST_DATABASE_URL" -XAtqc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || gate_log "could not drop schema $schema"' EXIT
  start_server pg_addr CRM_DATABASE_URL="$CRM_TEST_DATABASE_URL" CRM_DATABASE_SCHEMA="$schema"
  run_example "PostgreSQL (schema $schema)" "$pg_addr"
fi

gate_log "PASS (SDK fresh, compiles, SQLite passed, $pg_result)"
