#!/usr/bin/env bash
# The proto gate: buf lint, a self-test of the breaking check, and buf breaking against a git
# baseline. buf is the version pinned in package.json / package-lock.json; rules are in buf.yaml.
#
#   scripts/check-proto.sh
#
# Locally, a missing node/npm, a failed `npm ci` or a shallow clone is reported as SKIPPED; under
# CI=true each is a failure.
#
# The baseline of `buf breaking`:
#   on a branch other than main   the main branch (local main, else origin/main)
#   on main, proto/ changed       HEAD (the working tree against the last commit)
#   on main, proto/ clean         HEAD~1 (what the last commit changed)
# A detached HEAD at main's commit counts as main. Needs the git history (not a --depth=1 clone).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

# --- the pinned buf -----------------------------------------------------------------------------
pinned_buf # sets BUF
gate_log "buf $("$BUF" --version 2>&1)"

# --- lint ---------------------------------------------------------------------------------------
gate_log "buf lint (buf.yaml: STANDARD, COMMENTS)"
if ! "$BUF" lint; then
  gate_log "FAIL: buf lint"
  exit 1
fi

# --- self-test: the breaking check must catch a deleted field -----------------------------------
# Before the git step, so that it still runs when that step is skipped (no git, shallow clone).
# A copy of the workspace with one field deleted, checked against the real proto/: buf has to fail,
# and for that field, not for some unrelated reason (a bad path or config also exits non-zero).
selftest="$WORK_DIR/selftest"
mkdir -p "$selftest"
cp -R proto buf.yaml "$selftest/"
victim_file="$selftest/proto/crm/v1/customer.proto"
field_re='^[[:space:]]+(repeated[[:space:]]+|optional[[:space:]]+)?[A-Za-z_][A-Za-z0-9_.]*[[:space:]]+([a-z][a-z0-9_]*)[[:space:]]*=[[:space:]]*[0-9]+[[:space:]]*;'
victim_line=$(grep -n -m 1 -E "$field_re" "$victim_file" || true)
if [ -z "$victim_line" ]; then
  gate_log "FAIL: self-test: no field declaration found in proto/crm/v1/customer.proto to delete"
  exit 1
fi
victim_name=$(sed -E "s/$field_re.*/\\2/" <<<"${victim_line#*:}")
sed -i "${victim_line%%:*}d" "$victim_file"
if cmp -s "$victim_file" proto/crm/v1/customer.proto; then
  gate_log "FAIL: self-test: the breaking edit did not change the copy"
  exit 1
fi
gate_log "self-test: buf breaking must reject the copy with field '$victim_name' deleted"
if (cd "$selftest" && "$BUF" breaking proto --against "$ROOT/proto" >"$WORK_DIR/selftest.out" 2>&1); then
  gate_log "FAIL: self-test: buf breaking accepted a deleted field; the breaking gate does not work"
  exit 1
fi
if ! grep -q "with name \"$victim_name\" on message .* was deleted" "$WORK_DIR/selftest.out"; then
  cat "$WORK_DIR/selftest.out" >&2
  gate_log "FAIL: self-test: buf breaking failed, but not on the deleted field '$victim_name'"
  exit 1
fi

# --- breaking, against the git baseline ---------------------------------------------------------
# subdir=proto, not the repository root: commits from before buf.yaml existed have no workspace
# file, and proto/ is the module root either way (files are crm/v1/*.proto, as in build.rs).
# --git-common-dir rather than .git, so that this also works in a `git worktree`.
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || skip_or_fail "not a git checkout: no baseline for buf breaking"
git_dir=$(cd "$(git rev-parse --git-common-dir)" && pwd)
if [ "$(git rev-parse --is-shallow-repository)" = "true" ]; then
  skip_or_fail "shallow clone: buf breaking needs the history (git fetch --unshallow)"
fi

branch=$(git symbolic-ref -q --short HEAD || true)
main_rev=""
for candidate in refs/heads/main refs/remotes/origin/main; do
  if git show-ref --verify -q "$candidate"; then
    main_rev=$candidate
    break
  fi
done

baseline_rev=""
if [ "$branch" = "main" ] || { [ -n "$main_rev" ] && [ "$(git rev-parse HEAD)" = "$(git rev-parse "$main_rev")" ]; }; then
  if [ -n "$(git status --porcelain --untracked-files=all -- proto)" ]; then
    baseline_rev=HEAD
    baseline_what="HEAD (proto/ has uncommitted changes)"
  elif git rev-parse -q --verify HEAD~1 >/dev/null; then
    baseline_rev=HEAD~1
    baseline_what="HEAD~1 (on main, proto/ clean: the last commit's changes)"
  else
    gate_log "buf breaking: the first commit has no previous one to compare against"
  fi
else
  [ -n "$main_rev" ] || skip_or_fail "no main branch to compare against (git fetch origin main:main)"
  baseline_rev=$main_rev
  baseline_what="$main_rev (branch ${branch:-detached HEAD})"
fi

if [ -n "$baseline_rev" ]; then
  if ! git cat-file -e "$baseline_rev:proto" 2>/dev/null; then
    gate_log "buf breaking: $baseline_rev has no proto/, nothing to compare"
  else
    # The commit id, not the name: buf clones the repository, where HEAD would be the main
    # worktree's HEAD rather than this one's.
    against="$git_dir#format=git,ref=$(git rev-parse --verify "$baseline_rev^{commit}"),subdir=proto"
    gate_log "buf breaking proto --against $baseline_what"
    if ! "$BUF" breaking proto --against "$against"; then
      gate_log "FAIL: buf breaking against $baseline_what (buf.yaml: FILE)"
      exit 1
    fi
  fi
fi

gate_log "PASS"
