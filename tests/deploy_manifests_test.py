#!/usr/bin/env python3
"""Parses every Kubernetes manifest in deploy/kubernetes and checks what the mesh relies
on: valid YAML, required fields per object, and the sidecar's security settings.
Exit 77 (skipped) without python3-yaml."""
import pathlib
import sys

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is not installed")
    sys.exit(77)

ROOT = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
failures = []


def check(what, ok):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


objects = []
for path in sorted(ROOT.rglob("*.yaml")):
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        check(f"{path.name} parses ({e})", False)
        continue
    check(f"{path.name} parses ({len(docs)} documents)", True)
    for doc in docs:
        objects.append((path.name, doc))

for name, doc in objects:
    if name == "sidecar-patch.yaml":
        continue  # a patch, not an object
    ok = all(k in doc for k in ("apiVersion", "kind", "metadata")) and "name" in doc["metadata"]
    check(f"{name}: {doc.get('kind')} has apiVersion, kind, metadata.name", ok)

kinds = {doc.get("kind") for _, doc in objects}
for kind in ("Namespace", "Deployment", "Service", "ServiceAccount", "ClusterRole",
             "ClusterRoleBinding", "MutatingWebhookConfiguration", "ConfigMap"):
    check(f"a {kind} is defined", kind in kinds)

role = next(d for _, d in objects if d.get("kind") == "ClusterRole")
check("the CA may create tokenreviews",
      any("tokenreviews" in r["resources"] and "create" in r["verbs"] for r in role["rules"]))

check("the CA may get and update only the injector's webhook configuration",
      any(r["resources"] == ["mutatingwebhookconfigurations"] and
          r.get("resourceNames") == ["tandem-sidecar-injector"] and
          sorted(r["verbs"]) == ["get", "update"] for r in role["rules"]))
webhook = next(d for _, d in objects if d.get("kind") == "MutatingWebhookConfiguration")
webhook_service = webhook["webhooks"][0]["clientConfig"]["service"]
injector_service = next(d for _, d in objects if d.get("kind") == "Service" and
                        d["metadata"]["name"] == webhook_service["name"])
check("the webhook's Service reaches the CA's injector port 15017",
      injector_service["metadata"]["namespace"] == webhook_service["namespace"] and
      any(p["port"] == webhook_service["port"] and p["targetPort"] == 15017
          for p in injector_service["spec"]["ports"]))
ca = next(d for _, d in objects if d.get("kind") == "Deployment" and
          d["metadata"]["name"] == "tandem-ca")
ca_spec = ca["spec"]["template"]["spec"]
ca_args = ca_spec["containers"][0]["args"]
ca_volumes = {v["name"]: v for v in ca_spec["volumes"]}
check("the CA serves a mesh policy file from a ConfigMap",
      "--policy-file=/etc/tandem/policy/mesh-policy.yaml" in ca_args and
      ca_volumes["policy"]["configMap"]["name"] == "tandem-mesh-policy")
check("the CA keeps revocations on a persistent volume",
      any(a.startswith("--state-dir=/var/lib/tandem-ca-state") for a in ca_args) and
      "persistentVolumeClaim" in ca_volumes["state"])
check("the CA serves the injector webhook and fills its caBundle",
      "--injector-listen=0.0.0.0:15017" in ca_args and
      f"--webhook-config={webhook['metadata']['name']}" in ca_args and
      any(a.startswith(f"--injector-dns-names={webhook_service['name']}."
                       f"{webhook_service['namespace']}.svc") for a in ca_args))
check("the CA's admin endpoint is on loopback",
      any(a.startswith("--admin=127.0.0.1:") for a in ca_args))
policy_map = next(d for _, d in objects if d.get("kind") == "ConfigMap" and
                  d["metadata"]["name"] == "tandem-mesh-policy")
check("the mesh policy ConfigMap holds YAML",
      isinstance(yaml.safe_load(policy_map["data"]["mesh-policy.yaml"]), dict))
proxy_map = next(d for _, d in objects if d.get("kind") == "ConfigMap" and
                 d["metadata"]["name"] == "tandem-proxy-config")
check("sidecars take the mesh policy from their agent",
      '"policy_from_agent": true' in proxy_map["data"]["proxy.json"])
patch = next(d for n, d in objects if n == "sidecar-patch.yaml")
pod = patch["spec"]["template"]["spec"]
inits = {c["name"]: c for c in pod["initContainers"]}
check("init container adds NET_ADMIN", "NET_ADMIN" in
      inits["tandem-init"]["securityContext"]["capabilities"]["add"])
for side in ("tandem-agent", "tandem-proxy"):
    c = inits[side]
    check(f"{side} is a native sidecar", c.get("restartPolicy") == "Always")
    check(f"{side} runs as uid 1337", c["securityContext"]["runAsUser"] == 1337)
    check(f"{side} drops all capabilities", c["securityContext"]["capabilities"]["drop"] == ["ALL"])
    check(f"{side} has a read-only root", c["securityContext"]["readOnlyRootFilesystem"])
proxy = inits["tandem-proxy"]
check("readiness probes 15021", proxy["readinessProbe"]["httpGet"]["port"] == 15021)
check("app held until the proxy is ready (startupProbe)", "startupProbe" in proxy)
token = next(v for v in pod["volumes"] if v["name"] == "tandem-token")
src = token["projected"]["sources"][0]["serviceAccountToken"]
check("projected token has the CA audience", src["audience"] == "istio-ca")
check("metrics scraping is annotated",
      patch["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "15090")

print(f"{len(failures)} failed" if failures else "all manifest checks passed")
sys.exit(1 if failures else 0)
