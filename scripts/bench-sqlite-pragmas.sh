#!/usr/bin/env bash
# What SQLite's durability and erasure settings cost on this machine's disk: N single-row write
# transactions (an insert of a customer-sized row, then N deletes of them), each committed on its
# own as the service commits a call, under synchronous FULL / NORMAL × secure_delete ON / OFF, in
# WAL mode like the service. Needs the sqlite3 CLI. Prints transactions a second per combination.
#
#   scripts/bench-sqlite-pragmas.sh [N]   (default 3000)
set -euo pipefail
n=${1:-3000}
command -v sqlite3 >/dev/null || { echo "sqlite3 is not installed" >&2; exit 1; }
work=$(mktemp -d /tmp/crm-pragmas.XXXXXX)
trap 'rm -rf "$work"' EXIT
rate() { awk -v n="$n" -v ns="$1" 'BEGIN { printf "%8.0f", n / (ns / 1e9) }'; }
printf '%-12s %-14s %12s %12s\n' synchronous secure_delete "inserts/s" "deletes/s"
for sync in FULL NORMAL; do
  for secure in ON OFF; do
    db="$work/p.db"
    rm -f "$db"*
    sqlite3 "$db" "pragma journal_mode=wal;
      create table t(id integer primary key, name text, email text, phone text, pad text);" >/dev/null
    pragmas="pragma synchronous=$sync; pragma secure_delete=$secure;"
    {
      echo "$pragmas"
      for i in $(seq 1 "$n"); do
        echo "begin immediate; insert into t values($i, 'Customer $i', 'c$i@example.com', '+1 555 0100', hex(randomblob(200))); commit;"
      done
    } > "$work/insert.sql"
    {
      echo "$pragmas"
      for i in $(seq 1 "$n"); do echo "begin immediate; delete from t where id = $i; commit;"; done
    } > "$work/delete.sql"
    t0=$(date +%s%N); sqlite3 "$db" < "$work/insert.sql" >/dev/null; t1=$(date +%s%N)
    sqlite3 "$db" < "$work/delete.sql" >/dev/null; t2=$(date +%s%N)
    printf '%-12s %-14s %12s %12s\n' "$sync" "$secure" "$(rate $((t1 - t0)))" "$(rate $((t2 - t1)))"
  done
done
