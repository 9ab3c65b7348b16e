#!/usr/bin/env bash
# Merge benchmark: MergeCustomers and UnmergeCustomers of one duplicate with N live records
# (default 10,000) into an empty survivor, each against the raw set-based SQL doing the same
# writes on the same database, on SQLite and on PostgreSQL (examples/merge_bench.rs says what
# each side does and how PostgreSQL's dead tuples are handled). Target: each ratio ≤ 1.2.
#
#   scripts/bench-merge.sh [RECORDS] [CYCLES]
#
# PostgreSQL comes from CRM_BENCH_DATABASE_URL, else CRM_TEST_DATABASE_URL (scripts/lib.sh's
# default), in a throwaway schema. Everything runs on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh # CRM_TEST_DATABASE_URL and WORK_DIR; this script's own trap replaces lib.sh's
records=${1:-10000}
cycles=${2:-5}
pg_url=${CRM_BENCH_DATABASE_URL:-$CRM_TEST_DATABASE_URL}
secret="bench-secret-0123456789abcdef0123456789"
work=$WORK_DIR
schema="crm_merge_bench_$$_$(date +%s)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  psql "$pg_url" -XAtqc "drop schema if exists $schema cascade" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet --bin crm-service --example merge_bench
bin=target/release/crm-service
bench=target/release/examples/merge_bench

run() { # label database-url [schema]
  local label=$1 url=$2 schema_args=() schema_arg=-
  [ $# -ge 3 ] && schema_args=(--database-schema "$3") && schema_arg=$3
  echo "== $label: one duplicate with $records related records"
  local seeded duplicate addr=""
  seeded=$("$bin" seed --database-url "$url" "${schema_args[@]}" --tenant demo --customers 0 \
    --big-customer-records "$records" 2>/dev/null)
  duplicate=$(echo "$seeded" | sed -n 's/^benchmark customer with .* records: //p')
  CRM_JWT_SECRET=$secret CRM_PURGE_INTERVAL=0 RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 \
    --database-url "$url" "${schema_args[@]}" > "$work/serve.out" 2> "$work/serve.err" &
  server_pid=$!
  for _ in $(seq 1 100); do
    addr=$(sed -n 's/^crm-service listening on //p' "$work/serve.out")
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { cat "$work/serve.err"; exit 1; }
  "$bench" "$addr" "$url" "$schema_arg" "$duplicate" "$secret" "$cycles" | sed 's/^/   /'
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

run SQLite "sqlite://$work/bench.db"
if psql "$pg_url" -XAtqc 'select 1' >/dev/null 2>&1; then
  run PostgreSQL "$pg_url" "$schema"
else
  echo "== PostgreSQL: SKIPPED ($pg_url unreachable; set CRM_BENCH_DATABASE_URL)"
fi
