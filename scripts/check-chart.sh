#!/usr/bin/env bash
# The Helm chart gate: lints, renders and validates helm/crm-service without a helm binary, a
# cluster or a network (after the venv exists).
#
#   1. yamllint on Chart.yaml and values.yaml (templates are Go templates, not YAML);
#   2. scripts/check_chart.py: helm lint --strict and renders through helm-python-sdk (the Helm v4
#      engine), the defaults and value variants (TLS/mTLS, autoscaling, metrics, chart-created vs
#      existing Secrets, OTEL, everything at once), bad values that must be rejected, and
#      assertions on what the chart promises (gRPC probes, security context, hooks, secrets);
#   3. kubernetes-validate --strict against the Kubernetes 1.33 OpenAPI schemas, every variant.
#
# Usage: scripts/check-chart.sh        (CI=true turns a missing tool into a failure)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBE_VERSION=1.33.0
CHART="$ROOT/helm/crm-service"

ci_tools
command -v yamllint >/dev/null || skip_or_fail "yamllint is not installed"
command -v kubernetes-validate >/dev/null || skip_or_fail "kubernetes-validate is not installed"
python -c 'import helm_python' 2>/dev/null || skip_or_fail "helm-python-sdk (import helm_python) is unavailable"

gate_log "yamllint Chart.yaml values.yaml"
yamllint --strict -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' \
  "$CHART/Chart.yaml" "$CHART/values.yaml"
python -c 'import json, sys; json.load(open(sys.argv[1]))' "$CHART/values.schema.json"

gate_log "helm lint --strict, render variants, rejected values, assertions"
RENDERED="$WORK_DIR/rendered"
mkdir -p "$RENDERED"
if ! python "$ROOT/scripts/check_chart.py" "$CHART" "$RENDERED" | tee "$WORK_DIR/check.out"; then
  gate_log "FAIL: the chart checks failed (above)"
  exit 1
fi
summary=$(tail -n 1 "$WORK_DIR/check.out")

gate_log "kubernetes-validate -k $KUBE_VERSION --strict"
failed=0
for file in "$RENDERED"/*.yaml; do
  if ! out=$(kubernetes-validate -k "$KUBE_VERSION" --strict --quiet "$file" 2>&1); then
    printf '%s\n' "$out" >&2
    gate_log "FAIL: $(basename "$file" .yaml) does not validate against Kubernetes $KUBE_VERSION"
    failed=1
  elif [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
  fi
done
[ "$failed" = 0 ] || exit 1

printf '%s kubernetes=%s (strict): PASS\n' "$summary" "$KUBE_VERSION"
