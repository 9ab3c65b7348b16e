#!/usr/bin/env bash
# The audit head's decay, on PostgreSQL, in raw SQL: every audited write of a tenant locks and
# updates its one row of audit_head. This runs that statement pair (BEGIN; SELECT … FOR UPDATE;
# UPDATE; COMMIT) from CONCURRENCY pgbench clients on one tenant's row, ROUNDS rounds of SECONDS
# each, never vacuuming in between (as on a cluster whose autovacuum is off or lagging), against
# three copies of the table: as it was before m0018 (default storage), as m0018 sets it up
# (fillfactor 10), and that vacuumed after every round (as the server's maintenance does). Prints per round: transactions a second, the table's pages, its dead rows and
# the share of HOT updates. Rounds alternate between the two tables, so drift of the machine
# falls on both.
#
#   scripts/bench-audit-head.sh [ROUNDS] [SECONDS] [CONCURRENCY]
#
# CRM_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); a throwaway schema,
# dropped at the end.
set -euo pipefail
rounds=${1:-10}
seconds=${2:-10}
concurrency=${3:-16}
url=${CRM_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
schema="bench_head_$(date +%s%N)"
work=$(mktemp -d /tmp/crm-bench-head.XXXXXX)
cleanup() {
  psql "$url" -XAtqc "drop schema if exists $schema cascade" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
sql() { psql "$url" -XAtq -v ON_ERROR_STOP=1 -c "set search_path = $schema" -c "$1"; }

psql "$url" -XAtqc "create schema $schema"
for table in head_default head_hot head_vacuumed; do
  sql "create table $table (tenant_id text primary key, sequence bigint not null, hash text not null, event_sequence bigint not null)"
done
sql "alter table head_hot set (fillfactor = 10, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)"
sql "alter table head_vacuumed set (fillfactor = 10)"
for table in head_default head_hot head_vacuumed; do
  # One tenant under test, and fifteen others sharing its pages, as a real table holds them.
  sql "insert into $table select 't' || n, 0, repeat('0', 64), 0 from generate_series(0, 15) n"
  sql "analyze $table"
  cat >"$work/$table.sql" <<SQL
BEGIN;
SELECT sequence, hash, event_sequence FROM $schema.$table WHERE tenant_id = 't0' FOR UPDATE;
UPDATE $schema.$table SET sequence = sequence + 1, hash = md5(random()::text) || md5(random()::text), event_sequence = event_sequence + 1 WHERE tenant_id = 't0';
COMMIT;
SQL
done
echo "autovacuum: $(psql "$url" -XAtqc 'show autovacuum')"
printf '%-13s %5s %10s %6s %10s %6s %9s\n' table round tps pages dead_rows hot% vacuum_ms
for round in $(seq 1 "$rounds"); do
  for table in head_default head_hot head_vacuumed; do
    tps=$(pgbench -n -c "$concurrency" -j 2 -T "$seconds" -f "$work/$table.sql" "$url" 2>/dev/null \
      | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    stats=$(psql "$url" -XAtqF ' ' -c "select pg_relation_size('$schema.$table') / 8192, n_dead_tup,
      round(100.0 * n_tup_hot_upd / greatest(n_tup_upd, 1), 1)
      from pg_stat_user_tables where schemaname = '$schema' and relname = '$table'")
    vacuum_ms=-
    if [ "$table" = head_vacuumed ]; then
      # What a periodic VACUUM of the head table (the server's own, every SECONDS) costs.
      started=$(date +%s%N)
      psql "$url" -XAtqc "vacuum $schema.$table"
      vacuum_ms=$(( ($(date +%s%N) - started) / 1000000 ))
    fi
    # shellcheck disable=SC2086
    printf '%-13s %5d %10.0f %6s %10s %6s %9s\n' "$table" "$round" "$tps" $stats "$vacuum_ms"
  done
done
