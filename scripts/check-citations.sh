#!/usr/bin/env bash
# Gate: nothing in the project cites a document from outside the repository.
#
# The background documents the team once worked from are not part of the product. What the code,
# the tests, the scripts and their output rely on lives in docs/, in the project's own words, and
# is cited there (docs/design.md section 4, docs/reliability.md C4, docs/performance.md P1). This
# gate fails (exit 1), printing each offending file:line, when a file of the checkout cites one of
# those documents: every file git tracks, and every new file it does not ignore (so target/ and
# node_modules/ are not scanned), docs/ included. It looks for:
#   - the folder they sit in: a relative path one level up to `shared`, or its absolute path;
#   - one of them by file name: DESIGN, STYLE, ECOSYSTEM, RELIABILITY or PERFORMANCE, upper case,
#     with `.md`, or after `shared/`;
#   - one of them by bare name followed by a section sign, the word "section", or an id (an
#     upper-case name, a space, then something like 4, A4, M1 or 3.1).
# Sections of RFCs and AIPs are public standards and stay allowed, as do the docs/ names (lower
# case, and ARCHITECTURE.md).
#
# Every run first proves itself on a scratch repository: each form above planted in a file of its
# own must be reported at its file and line, and allowed text must not be.
#
#   scripts/check-citations.sh
set -uo pipefail
cd "$(dirname "$0")/.."

log() { printf '[check-citations] %s\n' "$*" >&2; }

# The patterns (extended regular expressions, case-sensitive). Each is written so that this file
# does not match it: a bracketed `[.]` or `[d]` never matches its own text.
names='(DESIGN|STYLE|ECOSYSTEM|RELIABILITY|PERFORMANCE)'
patterns=(
  -e '[.][.]/share[d]'
  -e '/work/share[d]'
  -e "share[d]/$names"
  -e "$names[.]md"
  -e "$names (§|section|[A-Z]?[0-9])"
)

# Prints every citation in the repository at $1 as FILE:LINE:TEXT. Returns 0 when there is none,
# 1 when there are, 2 when the scan itself failed.
scan() {
  local dir=$1 listed=() files=() f rc
  if ! git -C "$dir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    log "$dir is not a git checkout: cannot list its files"
    return 2
  fi
  mapfile -d '' listed < <(git -C "$dir" ls-files -z --cached --others --exclude-standard)
  for f in "${listed[@]}"; do
    [ -f "$dir/$f" ] && files+=("$f") # a tracked file deleted in the worktree is not there to scan
  done
  [ ${#files[@]} -eq 0 ] && return 0
  (cd "$dir" && grep -nIE "${patterns[@]}" -- "${files[@]}")
  rc=$?
  case $rc in
    0) return 1 ;;
    1) return 0 ;;
    *) log "grep failed (exit $rc)"; return 2 ;;
  esac
}

# The self-test. The planted citations are assembled at run time (upper-casing the names), so that
# this file itself holds none of them.
up() { tr '[:lower:]' '[:upper:]' <<<"$1"; }
self_test() {
  local dir out rc failed=0 expected
  dir=$(mktemp -d /tmp/crm-check-citations.XXXXXX)
  git -C "$dir" init -q
  mkdir -p "$dir/src" "$dir/tests" "$dir/scripts" "$dir/docs"
  # file:line of each planted citation, and the line itself.
  local planted=(
    "src/a.rs:2://! see ../$(echo shared)/notes"
    "src/b.rs:1:// kept in /work/$(echo shared) for now"
    "scripts/c.sh:3:# as $(echo shared)/$(up design) says"
    "tests/d.rs:1://! Limits ($(up reliability).md, B1)"
    "docs/e.md:2:The method of $(up performance).md."
    "src/f.rs:1:/// $(up style).md asks for it"
    "src/g.rs:1:/// from $(up ecosystem).md"
    "tests/h.rs:2://! Tenancy ($(up reliability) A4)"
    "src/i.rs:1://! The lifecycle ($(up design) §4)"
    "src/j.rs:1:    \"info; $(up performance) §5 G3\","
    "tests/k.rs:1://! Undecodable requests ($(up reliability) 3.1, E1)"
    "buf.yaml:1:# the style $(up design) section 5 chose"
  )
  local entry file line text
  for entry in "${planted[@]}"; do
    file=${entry%%:*}; line=${entry#*:}; text=${line#*:}; line=${line%%:*}
    { for _ in $(seq 2 "$line"); do echo "// filler"; done; echo "$text"; } >"$dir/$file"
  done
  # Allowed: standards' sections, the project's own docs, ordinary words.
  cat >"$dir/src/allowed.rs" <<'ALLOWED'
/// RFC 7515 §4.1.11 and RFC 7541 §4.1; AIP-158 and AIP-193.
//! Who may do what (docs/design.md section 2); tenancy (docs/reliability.md A4).
//! The pool ping (docs/performance.md P1); the layers (docs/ARCHITECTURE.md).
/// HS256 with a shared secret; the HMAC key is shared by replicas through the database.
ALLOWED
  git -C "$dir" add -A >/dev/null
  echo "// not tracked, not ignored: scanned too" >"$dir/src/new.rs"
  echo "// $(up design).md" >>"$dir/src/new.rs"
  out=$(scan "$dir")
  rc=$?
  if [ "$rc" -ne 1 ]; then
    log "self-test: the scan of planted citations returned $rc, not 1"
    failed=1
  fi
  for entry in "${planted[@]}" "src/new.rs:2:"; do
    expected=$(cut -d: -f1,2 <<<"$entry")
    if ! grep -q "^${expected//./[.]}:" <<<"$out"; then
      log "self-test: the citation planted at $expected was not reported"
      failed=1
    fi
  done
  if grep -q '^src/allowed.rs:' <<<"$out"; then
    log "self-test: allowed text was reported:"
    grep '^src/allowed.rs:' <<<"$out" >&2
    failed=1
  fi
  [ "$(wc -l <<<"$out")" -eq $(( ${#planted[@]} + 1 )) ] || {
    log "self-test: expected $(( ${#planted[@]} + 1 )) citations, got:"
    printf '%s\n' "$out" >&2
    failed=1
  }
  rm -rf "$dir"
  return "$failed"
}

if ! self_test; then
  log "FAIL: the gate's self-test failed; fix this script before trusting its verdict"
  exit 1
fi

out=$(scan .)
rc=$?
case $rc in
  0)
    log "no file cites a document from outside the repository (self-test: every planted form caught)"
    exit 0
    ;;
  1)
    log "FAIL: these lines cite a document from outside the repository; cite docs/ instead, or say the reason in a few words:"
    printf '%s\n' "$out"
    exit 1
    ;;
  *)
    log "FAIL: the scan did not run"
    exit 1
    ;;
esac
