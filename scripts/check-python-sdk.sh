#!/usr/bin/env bash
# Gate: the Python SDK in clients/python.
#   1. The committed generated code is fresh: regenerate into a temporary directory and diff.
#   2. examples/golden_path.py (the deletion golden path, rich errors, health),
#      examples/batch_cleanup.py (a deletion batch, the recycle bin, a batch restore),
#      examples/merge_duplicates.py (candidates, a merge through approval, an unmerge) and
#      examples/approval_policy.py (the tenant settings' etag, routing by team, the inbox, the
#      two-person rule with an admin required; in a tenant of its own, py-gate-approvals, since it
#      turns the rule on while it runs) pass against a real server on SQLite,
#   3. and on PostgreSQL (CRM_TEST_DATABASE_URL, by default lib.sh's, the same as cargo test's) in a
#      throwaway schema that is dropped at the end. If it does not answer: SKIPPED locally, a
#      failure under CI=true.
#
#   CRM_BIN=/path/to/crm-service scripts/check-python-sdk.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
ci_tools
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the committed tree
sdk=$ROOT/clients/python

gate_log "regenerating the SDK to check clients/python/src/crm is fresh"
PYTHON=python "$sdk/generate.sh" "$WORK_DIR/gen" >/dev/null
if ! diff -r -x __pycache__ "$WORK_DIR/gen/crm" "$sdk/src/crm" >"$WORK_DIR/gen.diff"; then
  head -n 40 "$WORK_DIR/gen.diff" >&2
  gate_log "FAIL: the generated code in clients/python/src/crm is stale; run" \
    "'PYTHON=python3 clients/python/generate.sh' (with grpcio-tools from scripts/ci-requirements.txt) and commit it"
  exit 1
fi

run_example() { # LABEL EXAMPLE ARG...: one example, as a user runs it
  local label=$1 example=$2 out
  shift 2
  out="$WORK_DIR/$example-${label%% *}.out"
  if ! PYTHONPATH="$sdk/src" python "$sdk/examples/$example.py" "$@" >"$out" 2>&1; then
    cat "$out" >&2
    gate_log "FAIL: the Python example $example failed on $label"
    exit 1
  fi
  gate_log "$example on $label: $(grep -c '^  ok ' "$out") checks OK"
}

golden_path() { # LABEL ADDR: every example
  local label=$1 addr=$2 example
  local rep sup
  rep=$(mint_token --tenant py-gate --user alice --role sales_rep)
  sup=$(mint_token --tenant py-gate --user bob --role supervisor)
  for example in golden_path batch_cleanup merge_duplicates; do
    run_example "$label" "$example" --addr "$addr" --rep-token "$rep" --supervisor-token "$sup"
  done
  # approval_policy: tokens with team claims, in a tenant of its own (it turns the tenant's
  # two-person rule on while it runs). Assigned one by one so that a failing mint stops the gate.
  local t=(--tenant py-gate-approvals) admin teams_rep apac emea emea2
  admin=$(mint_token "${t[@]}" --user ada --role admin)
  teams_rep=$(mint_token "${t[@]}" --user alice --role sales_rep --claim teams=emea)
  apac=$(mint_token "${t[@]}" --user pat --role supervisor --claim supervises=apac)
  emea=$(mint_token "${t[@]}" --user bob --role supervisor --claim supervises=emea)
  emea2=$(mint_token "${t[@]}" --user eve --role supervisor --claim supervises=emea)
  run_example "$label" approval_policy --addr "$addr" --admin-token "$admin" \
    --rep-token "$teams_rep" --apac-supervisor-token "$apac" --emea-supervisor-token "$emea" \
    --second-emea-supervisor-token "$emea2"
}

start_server sqlite_addr
golden_path SQLite "$sqlite_addr"

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
  schema="py_gate_$(date +%s)_$RANDOM"
  # Stop the servers first (lib.sh's cleanup), then drop the schema they used.
  trap '_gate_cleanup; psql "$CRM_TEST_DATABASE_URL" -XAtqc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || gate_log "could not drop schema $schema"' EXIT
  start_server pg_addr CRM_DATABASE_URL="$CRM_TEST_DATABASE_URL" CRM_DATABASE_SCHEMA="$schema"
  golden_path "PostgreSQL (schema $schema)" "$pg_addr"
fi

gate_log "PASS (SDK fresh, SQLite passed, $pg_result)"
