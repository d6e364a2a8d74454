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
# The PodMonitors name ports and containers that the sidecar template and the CA's
# Deployment define.
python3 - "$rules/podmonitor.yaml" "$here/../../deploy/kubernetes" <<'PY'
import sys, yaml
monitors = {m["metadata"]["name"]: m for m in yaml.safe_load_all(open(sys.argv[1]))}
template = yaml.safe_load(open(f"{sys.argv[2]}/injection/sidecar-template.yaml"))
ports = {(c["name"], p["name"]) for c in template["sidecars"] for p in c.get("ports", [])}
for endpoint in monitors["tandem-sidecars"]["spec"]["podMetricsEndpoints"]:
    container = endpoint["relabelings"][0]["regex"]
    assert (container, endpoint["port"]) in ports, (container, endpoint["port"], ports)
ca = next(d for d in yaml.safe_load_all(open(f"{sys.argv[2]}/ca/deployment.yaml"))
          if d and d.get("kind") == "Deployment")
ca_ports = {p["name"] for c in ca["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])}
ca_spec = monitors["tandem-ca"]["spec"]
assert ca_spec["selector"]["matchLabels"].items() <= ca["spec"]["template"]["metadata"]["labels"].items()
assert ca_spec["podMetricsEndpoints"][0]["port"] in ca_ports, ca_ports
print("podmonitor.yaml names the sidecars' and the CA's metrics ports")
PY
