#!/usr/bin/env bash
# Samples what this service's PostgreSQL sessions are doing, every 20 ms for SECONDS, and prints
# the average number of sessions in each state: a wait event (`Lock:tuple`, `LWLock:WALWrite`,
# `IO:WALSync`…), `active` (running, not waiting) or `idle in transaction` (a transaction held open
# while the server works between two of its statements). Run it beside a write benchmark to see
# where a tenant's writers queue (issue 22's one-tenant runs).
#
#   scripts/pg-waits.sh SECONDS [APPLICATION_NAME_PREFIX]   (default prefix: crm-service)
#
# PostgreSQL comes from CRM_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
seconds=${1:?usage: $0 SECONDS [APPLICATION_NAME_PREFIX]}
prefix=${2:-crm-service}
pg_url=${CRM_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
samples=$(awk -v s="$seconds" 'BEGIN { printf "%d", s / 0.02 }')
# One session runs every sample (a psql per sample would cost more than the interval).
for _ in $(seq 1 "$samples"); do
  echo "select coalesce(wait_event_type || ':' || wait_event, state) from pg_stat_activity
        where application_name like '$prefix%' and pid <> pg_backend_pid() and state <> 'idle';"
  echo "select pg_sleep(0.02);"
done | psql "$pg_url" -XAtq | grep -v '^$' | sort | uniq -c | sort -rn \
  | awk -v n="$samples" '{ c = $1; $1 = ""; printf "  %5.2f  %s\n", c / n, substr($0, 2) }'
echo "  (average sessions in each state over $samples samples of 20 ms)"
