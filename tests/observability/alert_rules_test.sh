#!/usr/bin/env bash
# Checks deploy/observability's alerting rules: promtool's linter, the unit tests of
# alerts_test.yaml (each alert fires and stays quiet where it should), and that the
# PrometheusRule carries exactly the groups of the plain rule file. Exit 77 (skipped)
# without promtool (Debian package prometheus).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rules="$here/../../deploy/observability"
command -v promtool >/dev/null || { echo "SKIP: promtool is not installed"; exit 77; }
promtool check rules "$rules/alerts.yaml"
# promtool resolves rule_files relative to the test file's directory.
(cd "$here" && promtool test rules alerts_test.yaml)
python3 - "$rules/alerts.yaml" "$rules/prometheusrule.yaml" <<'PY'
import sys, yaml
plain = yaml.safe_load(open(sys.argv[1]))
operator = yaml.safe_load(open(sys.argv[2]))
assert operator["kind"] == "PrometheusRule", operator["kind"]
if operator["spec"] != plain:
    sys.exit("prometheusrule.yaml's spec differs from alerts.yaml: regenerate it")
print("prometheusrule.yaml matches alerts.yaml")
PY
