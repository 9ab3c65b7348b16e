#!/usr/bin/env bash
# Deletion lifecycle benchmark: one customer with N related records (default 100,000), on SQLite
# and on PostgreSQL. Prints PreviewDeleteCustomer p50/p95, DeleteCustomer and RestoreCustomer
# latency per cycle, and the server's RSS and peak RSS (VmHWM) as it goes.
#
#   scripts/bench-lifecycle.sh [RECORDS] [CYCLES]
#
# PostgreSQL comes from CRM_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
# in a throwaway schema. Everything runs on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-100000}
cycles=${2:-3}
pg_url=${CRM_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
secret="bench-secret-0123456789abcdef0123456789"
work=$(mktemp -d /tmp/crm-bench.XXXXXX)
schema="bench_$(date +%s)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  psql "$pg_url" -XAtqc "drop schema if exists $schema cascade" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet --bin crm-service --example lifecycle_bench
bin=target/release/crm-service
bench=target/release/examples/lifecycle_bench

run() { # label database-url [schema]
  local label=$1 url=$2 schema_args=()
  [ $# -ge 3 ] && schema_args=(--database-schema "$3")
  echo "== $label: one customer with $records related records"
  local seeded
  seeded=$("$bin" seed --database-url "$url" "${schema_args[@]}" --tenant demo --customers 0 \
    --big-customer-records "$records" 2>/dev/null)
  echo "$seeded" | sed 's/^/   seed: /'
  local customer
  customer=$(echo "$seeded" | sed -n 's/^benchmark customer with .* records: //p')
  if [[ $url == postgres* ]]; then
    # The seed leaves the visibility map unset: vacuum so counts are index-only, as in production.
    psql "$pg_url" -XAtq -c "set search_path to $3" -c "vacuum analyze" >/dev/null
  fi
  CRM_JWT_SECRET=$secret "$bin" serve --listen 127.0.0.1:0 --database-url "$url" "${schema_args[@]}" \
    > "$work/serve.out" 2> "$work/serve.err" &
  server_pid=$!
  local addr=""
  for _ in $(seq 1 100); do
    addr=$(sed -n 's/^crm-service listening on //p' "$work/serve.out")
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { cat "$work/serve.err"; exit 1; }
  "$bench" "$addr" "$customer" "$server_pid" "$secret" "$cycles" | sed 's/^/   /'
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

run SQLite "sqlite://$work/bench.db"
if psql "$pg_url" -XAtqc 'select 1' >/dev/null 2>&1; then
  run PostgreSQL "$pg_url" "$schema"
else
  echo "== PostgreSQL: SKIPPED ($pg_url unreachable; set CRM_BENCH_DATABASE_URL)"
fi
