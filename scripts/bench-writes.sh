#!/usr/bin/env bash
# Write benchmark: CreateCustomer + CreateContact in a closed loop (examples/write_bench.rs) against
# a fresh database, on SQLite and on PostgreSQL; then, on the same database, the deletion and the
# erasure (PurgeCustomer) of a customer with ERASED_RECORDS related records (default 20,000).
# Prints calls a second and p50/p99, and the delete's and the purge's times, per repetition.
#
#   scripts/bench-writes.sh [SECONDS] [REPS] [CONCURRENCY] [ERASED_RECORDS]
#
# CRM_BENCH_BINS: space-separated server binaries to alternate (an A/B of two builds; default the
# release build of this checkout), each run on a database of its own; CRM_BENCH_DATABASES: which
# of `sqlite postgres` (default both); CRM_BENCH_TENANTS: how many tenants the writers spread over
# (default 1: one audit chain, the per-tenant ceiling). PostgreSQL comes from
# CRM_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), in throwaway schemas;
# autovacuum may be off there, so each schema is new and dropped at the end (no dead tuples carry
# over from one run to the next). Everything runs on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
reps=${2:-3}
concurrency=${3:-16}
erased_records=${4:-20000}
pg_url=${CRM_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
secret="bench-secret-0123456789abcdef0123456789"
work=$(mktemp -d /tmp/crm-bench-writes.XXXXXX)
server_pid=""
schemas=()
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  for schema in "${schemas[@]}"; do
    psql "$pg_url" -XAtqc "drop schema if exists $schema cascade" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet --bin crm-service --example write_bench
bins=${CRM_BENCH_BINS:-target/release/crm-service}
bench=target/release/examples/write_bench

start() { # bin url [schema] → sets server_pid, addr
  local bin=$1 url=$2 schema_args=()
  [ $# -ge 3 ] && schema_args=(--database-schema "$3")
  "$bin" serve --listen 127.0.0.1:0 --database-url "$url" "${schema_args[@]}" --jwt-secret "$secret" \
    --retention 0s --purge-interval 0 >"$work/server.out" 2>"$work/server.err" &
  server_pid=$!
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/^crm-service listening on //p' "$work/server.out")
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "server did not start: $(cat "$work/server.err")" >&2
  exit 1
}

stop() {
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

for rep in $(seq 1 "$reps"); do
  for bin in $bins; do
    for db in ${CRM_BENCH_DATABASES:-sqlite postgres}; do
      schema_args=()
      if [ "$db" = sqlite ]; then
        rm -f "$work"/w.db*
        url="sqlite://$work/w.db"
      else
        schema="bench_w$(date +%s%N)"
        schemas+=("$schema")
        url="$pg_url"
        schema_args=("$schema")
      fi
      big=$("$bin" seed --database-url "$url" ${schema_args[@]/#/--database-schema=} --tenant demo \
        --customers 0 --big-customer-records "$erased_records" 2>/dev/null \
        | sed -n 's/^benchmark customer with .* records: //p')
      start "$bin" "$url" "${schema_args[@]}"
      printf '%-9s rep %d %-36s ' "$db" "$rep" "$bin"
      "$bench" "$addr" "$secret" "$concurrency" "$seconds"
      printf '%-9s rep %d %-36s ' "$db" "$rep" "$bin"
      "$bench" erase "$addr" "$secret" "$big"
      stop
    done
  done
done
