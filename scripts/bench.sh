#!/usr/bin/env bash
# Load benchmark (issue 6): the targets in the README's "Load benchmark" table, as ratios within one
# run, on SQLite and on PostgreSQL, in one command.
#
#   scripts/bench.sh            # full: 1,000,000 customers × 3 records + one customer with 100,000
#                               # records; 3 interleaved repetitions of 10 s runs (≈ 20 min)
#   scripts/bench.sh --smoke    # 20,000 customers + one with 5,000 records, 2 s runs, 1 repetition,
#                               # a 1,000-customer batch; targets printed but not enforced (≈ 2 min)
#   scripts/bench.sh --ci       # the test suite's check that the benchmark still runs: the debug
#                               # binaries cargo test built, 2,000 customers, sub-second runs, no
#                               # pgbench for the reads, no idle wait; fails only if something does
#                               # not run or a call fails (≈ 1 min). Under CI=true an unreachable
#                               # PostgreSQL fails.
#   scripts/bench.sh --writes [--enforce]
#                               # the write runs only (below), both databases: 3 s runs, 3
#                               # interleaved repetitions, medians, the ratio table; targets judged
#                               # with --enforce (≈ 20 min)
#   scripts/bench.sh --writes --long [N]
#                               # CreateCustomer in one tenant at c=64, N runs of 3 s in a row
#                               # (default 20), calls/s of each: no decay run after run (≈ 2 min)
#
# The write runs (examples/write_load.rs; every mode, after the reads, on a fresh database of their
# own): CreateCustomer and UpdateCustomer at c=1/16/64, in one tenant and across 16, without and
# with a request_id, each against the raw SQL of the same semantics from scripts/bench-sql
# (PostgreSQL: pgbench -M prepared -j 2 on the .pgbench scripts, min(C, 8) clients as the server's
# pool of 8 gives the service; SQLite: write_load runs the .sqlite.sql files itself over 8), the plain INSERT of the customer row alone, a 90 % GetCustomer / 10 %
# CreateCustomer mix, and BatchCreateCustomers of 1,000 against a raw multi-row INSERT (skipped, and
# said so, while the server answers UNIMPLEMENTED). PostgreSQL's autovacuum may be off: every
# write updates its tenant's audit_head row, the server vacuums that table every 10 s, and
# write_load runs the same VACUUM audit_head before each raw run. With --ci they run 0.3 s at
# c=1/4 with 20-customer batches; with --smoke 1 s, one repetition.
#
# For each database: seed with `crm-service seed`, start the server (release; debug with --ci) on
# 127.0.0.1 (port 0), run examples/load_bench.rs against it (Health/Check and GetCustomer at
# c=1/16/64, ListCustomers first page / deep page / each filter, ListDuplicateCandidates of random
# seeded customers (p50 ≤ 20 ms), PreviewDelete vs raw counts,
# Delete/Restore vs raw set-based SQL, a deletion batch of 1,000 customers × 10 records (10,000 in
# the full run; 20 with --ci) run and restored vs the raw SQL writing the same rows in chunks of the
# same size, with GetCustomer's rate during the run, and on PostgreSQL `pgbench -S -M prepared -c 8
# -j 2` as the database ceiling), then examples/merge_bench.rs against the same server
# (MergeCustomers and UnmergeCustomers of a duplicate with 10,000 records, seeded for it, vs the
# raw SQL of the same writes; 200 records with --ci), stop the server by its PID. Next to it runs examples/bare_server.rs, a bare
# tonic + sqlx GetCustomer server on the same database: the ceiling GetCustomer's p99 is held to,
# measured in the same repetitions. Exits 1 if a target is missed
# (full mode).
#
# PostgreSQL comes from CRM_BENCH_DATABASE_URL, else CRM_TEST_DATABASE_URL (what .ci/run sets, else
# scripts/lib.sh's default, the one cargo test uses): the service's tables go in a throwaway schema,
# pgbench's in a throwaway database, both dropped at the end. Everything runs on loopback; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh # CRM_TEST_DATABASE_URL and WORK_DIR; this script's own trap replaces lib.sh's

smoke=false ci=false writes_only=false long=0 enforce_writes=()
usage() { echo "usage: $0 [--smoke | --ci | --writes [--enforce | --long [N]]]" >&2; exit 2; }
case "${1:-}" in
  --smoke) smoke=true ;;
  --ci) smoke=true ci=true ;;
  --writes)
    writes_only=true
    case "${2:-}" in
      --enforce) enforce_writes=(--enforce) ;;
      --long) long=${3:-20}; [[ $long =~ ^[1-9][0-9]*$ ]] || usage ;;
      "") ;;
      *) usage ;;
    esac ;;
  "") ;;
  *) usage ;;
esac

if $ci; then
  customers=2000 big=500 depth=1800 scale=0
  bench_args=(--reps 1 --duration 0.5 --warmup 0.2 --list-duration 0.3 --previews 3 --cycles 2
    --idle-wait 0 --batch-customers 20)
  batch=20 merge_records=200 merge_cycles=1 merge_enforce=()
elif $smoke; then
  customers=20000 big=5000 depth=18000 scale=1
  bench_args=(--reps 1 --duration 2 --warmup 0.5 --list-duration 1 --previews 10 --cycles 2
    --batch-customers 1000)
  batch=1000 merge_records=10000 merge_cycles=3 merge_enforce=()
else
  customers=1000000 big=100000 depth=900000 scale=10
  bench_args=(--reps 3 --duration 10 --warmup 1 --list-duration 2 --previews 30 --cycles 10 --enforce
    --batch-customers 10000)
  batch=10000 merge_records=10000 merge_cycles=5 merge_enforce=(--enforce)
fi
# The write runs (examples/write_load.rs).
if $ci; then
  write_args=(--reps 1 --duration 0.3 --warmup 0 --idle-wait 0 --concurrency 1,4 --targets 64
    --batch-size 20 --batch-calls 1)
  command -v pgbench >/dev/null || write_args+=(--no-pgbench)
elif $smoke; then
  write_args=(--reps 1 --duration 1 --warmup 0.3 --batch-calls 1)
elif $writes_only; then
  write_args=(--reps 3 --duration 3 --warmup 0.5 "${enforce_writes[@]}")
  [ "$long" -gt 0 ] && write_args=(--duration 3 --warmup 0.5 --long "$long")
else
  write_args=(--reps 3 --duration 3 --warmup 0.5 --enforce)
fi

pg_url=${CRM_BENCH_DATABASE_URL:-$CRM_TEST_DATABASE_URL}
secret="bench-secret-0123456789abcdef0123456789"
work=$WORK_DIR
schema="crm_bench_$$_$(date +%s)"
writes_schema="crm_bench_w_$$_$(date +%s)"
pgbench_db="crm_pgbench_$$_$(date +%s)"
pgbench_created=false
server_pid=""
bare_pid=""
started=$(date +%s)

cleanup() {
  stop_servers
  psql "$pg_url" -XAtqc "drop schema if exists $schema cascade" >/dev/null 2>&1 || true
  psql "$pg_url" -XAtqc "drop schema if exists $writes_schema cascade" >/dev/null 2>&1 || true
  if $pgbench_created; then
    psql "$pg_url" -XAtqc "drop database if exists $pgbench_db" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
stop_servers() {
  local pid
  for pid in "$server_pid" "$bare_pid"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }
  done
  server_pid="" bare_pid=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if $ci; then
  profile=debug
  cargo build --quiet --bin crm-service --example load_bench --example bare_server --example merge_bench \
    --example write_load
else
  profile=release
  echo "== building (release)"
  cargo build --release --quiet --bin crm-service --example load_bench --example bare_server \
    --example merge_bench --example write_load
fi
bin=target/$profile/crm-service
bench=target/$profile/examples/load_bench
bare=target/$profile/examples/bare_server
merge_bench=target/$profile/examples/merge_bench
write_load=target/$profile/examples/write_load

# The address a server prints as `NAME listening on ADDR`, within 20 s; exits if it does not.
listening_on() { # name stdout-file stderr-file label
  local addr=""
  for _ in $(seq 1 200); do
    addr=$(sed -n "s/^$1 listening on //p" "$2" 2>/dev/null | head -n 1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  if [ -z "$addr" ]; then
    cat "$3" >&2
    echo "== $4: the $1 did not start" >&2
    exit 1
  fi
  echo "$addr"
}

status=0
run() { # label database-url [schema]
  local label=$1 url=$2 schema_args=() extra=()
  [ $# -ge 3 ] && schema_args=(--database-schema "$3")
  [ $# -ge 4 ] && extra=(--pgbench-url "$4")
  echo
  echo "== $label: seeding $customers customers × 3 records + one customer with $big records"
  local t0 seeded customer
  t0=$(date +%s)
  seeded=$("$bin" seed --database-url "$url" "${schema_args[@]}" --tenant demo \
    --customers "$customers" --records-per-customer 3 --big-customer-records "$big" 2>/dev/null)
  echo "$seeded" | sed 's/^/   seed: /'
  customer=$(echo "$seeded" | sed -n 's/^benchmark customer with .* records: //p')
  # The duplicate MergeCustomers and UnmergeCustomers move back and forth (examples/merge_bench.rs).
  seeded=$("$bin" seed --database-url "$url" "${schema_args[@]}" --tenant demo --customers 0 \
    --big-customer-records "$merge_records" 2>/dev/null)
  merge_duplicate=$(echo "$seeded" | sed -n 's/^benchmark customer with .* records: //p')
  if [[ $url == postgres* ]]; then
    # The seed leaves the visibility map unset: vacuum, as autovacuum would have in production,
    # so counts are index-only.
    psql "$pg_url" -XAtq -c "set search_path to $3" -c "vacuum analyze" >/dev/null
  fi
  echo "   ready in $(( $(date +%s) - t0 )) s"

  # The previous server's address must not be read as this one's before the new file is made.
  rm -f "$work/serve.out" "$work/serve.err" "$work/bare.out" "$work/bare.err"
  (exec env CRM_JWT_SECRET="$secret" CRM_PURGE_INTERVAL=0 CRM_LOG_FORMAT=json RUST_LOG=warn \
    CRM_MAX_BATCH_ITEMS="$batch" CRM_BATCH_CHUNK_SIZE=50 \
    "$bin" serve --listen 127.0.0.1:0 --database-url "$url" "${schema_args[@]}" \
    > "$work/serve.out" 2> "$work/serve.err") &
  server_pid=$!
  local addr bare_addr
  addr=$(listening_on "crm-service" "$work/serve.out" "$work/serve.err" "$label")
  (exec "$bare" --listen 127.0.0.1:0 --database-url "$url" "${schema_args[@]}" \
    > "$work/bare.out" 2> "$work/bare.err") &
  bare_pid=$!
  bare_addr=$(listening_on "bare server" "$work/bare.out" "$work/bare.err" "$label")
  local rc=0
  "$bench" --label "$label" --addr "$addr" --pid "$server_pid" --secret "$secret" \
    --bare-addr "$bare_addr" --bare-pid "$bare_pid" \
    --database-url "$url" "${schema_args[@]}" --big-customer "$customer" --depth "$depth" \
    "${extra[@]}" "${bench_args[@]}" || rc=$?
  echo "-- MergeCustomers / UnmergeCustomers of a duplicate with $merge_records records vs the raw SQL"
  "$merge_bench" "$addr" "$url" "${3:--}" "$merge_duplicate" "$secret" "$merge_cycles" \
    "${merge_enforce[@]}" | sed 's/^/   /' || rc=$?
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "== $label: the server died" >&2
    tail -n 20 "$work/serve.err" >&2
    rc=1
  fi
  stop_servers
  [ -s "$work/serve.err" ] && { echo "   server log (warnings and errors):"; tail -n 5 "$work/serve.err" | sed 's/^/   /'; }
  if [ "$rc" -ne 0 ]; then
    echo "== $label: FAILED (load_bench or merge_bench exit $rc)"
    status=1
  fi
}

# The write runs on a fresh, empty database (SQLite file or PostgreSQL schema): the server, then
# examples/write_load.rs, which makes the 16 tenants' heads and the customers Update updates.
run_writes() { # label database-url [schema]
  local label=$1 url=$2 schema_args=()
  [ $# -ge 3 ] && schema_args=(--database-schema "$3")
  echo
  echo "== $label: write runs on a fresh database"
  rm -f "$work/serve.out" "$work/serve.err"
  (exec env CRM_JWT_SECRET="$secret" CRM_PURGE_INTERVAL=0 CRM_LOG_FORMAT=json RUST_LOG=warn \
    "$bin" serve --listen 127.0.0.1:0 --database-url "$url" "${schema_args[@]}" \
    > "$work/serve.out" 2> "$work/serve.err") &
  server_pid=$!
  local addr rc=0
  addr=$(listening_on "crm-service" "$work/serve.out" "$work/serve.err" "$label")
  "$write_load" --label "$label" --addr "$addr" --pid "$server_pid" --secret "$secret" \
    --database-url "$url" "${schema_args[@]}" --sql-dir scripts/bench-sql "${write_args[@]}" || rc=$?
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "== $label: the server died" >&2
    tail -n 20 "$work/serve.err" >&2
    rc=1
  fi
  stop_servers
  [ -s "$work/serve.err" ] && { echo "   server log (warnings and errors):"; tail -n 5 "$work/serve.err" | sed 's/^/   /'; }
  if [ "$rc" -ne 0 ]; then
    echo "== $label: write runs FAILED (write_load exit $rc)"
    status=1
  fi
}

pg_up=true
psql "$pg_url" -XAtqc 'select 1' >/dev/null 2>&1 || pg_up=false

if $writes_only; then
  run_writes SQLite "sqlite://$work/writes.db"
  rm -f "$work"/writes.db*
  if $pg_up; then
    run_writes PostgreSQL "$pg_url" "$writes_schema"
  else
    echo "== PostgreSQL: SKIPPED ($pg_url unreachable; set CRM_BENCH_DATABASE_URL)"
    [ "${CI:-}" = "true" ] && { echo "== FAILED: CI=true and PostgreSQL is unreachable" >&2; status=1; }
  fi
  total=$(( $(date +%s) - started ))
  echo
  echo "== total time $((total / 60))m$(printf %02d $((total % 60)))s"
  exit "$status"
fi

run SQLite "sqlite://$work/bench.db"
rm -f "$work"/bench.db*   # 1.3 GiB at full size: free it before PostgreSQL
run_writes SQLite "sqlite://$work/writes.db"
rm -f "$work"/writes.db*

if ! $pg_up; then
  echo "== PostgreSQL: SKIPPED ($pg_url unreachable; set CRM_BENCH_DATABASE_URL)"
  [ "${CI:-}" = "true" ] && { echo "== FAILED: CI=true and PostgreSQL is unreachable" >&2; status=1; }
elif $ci; then
  run PostgreSQL "$pg_url" "$schema"
  run_writes PostgreSQL "$pg_url" "$writes_schema"
else
  # pgbench gets a database of its own, on the same server.
  psql "$pg_url" -XAtqc "create database $pgbench_db" >/dev/null
  pgbench_created=true
  base=${pg_url%%\?*}
  pgbench_url="${base%/*}/$pgbench_db"
  [ "$base" != "$pg_url" ] && pgbench_url="$pgbench_url?${pg_url#*\?}"
  echo
  echo "== PostgreSQL: pgbench -i -s $scale in a throwaway database"
  pgbench -i -q -s "$scale" "$pgbench_url" >/dev/null 2>&1
  run PostgreSQL "$pg_url" "$schema" "$pgbench_url"
  run_writes PostgreSQL "$pg_url" "$writes_schema"
fi

total=$(( $(date +%s) - started ))
echo
echo "== total time $((total / 60))m$(printf %02d $((total % 60)))s$($smoke && echo ' (smoke: targets not enforced)')"
exit "$status"
