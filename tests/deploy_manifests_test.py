#!/usr/bin/env python3
"""Checks what the mesh relies on in what `kubectl kustomize deploy/kubernetes` and the
example overlay render (tests/kustomize_render.py): the objects of a complete install,
least-privilege RBAC, the CA's hardening, the webhook wiring, and the example app's
namespace. Also the sidecar's hardening in injection/sidecar-template.yaml. Schema
validation is deploy_schema_test.py's job."""
import base64
import json
import sys

import kustomize_render
import yaml

failures = []


def check(what, ok):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def find(objects, kind, name, namespace=None):
    for o in objects:
        meta = o["metadata"]
        if o["kind"] == kind and meta["name"] == name and meta.get("namespace") == namespace:
            return o
    check(f"a {kind} {namespace + '/' if namespace else ''}{name} is rendered", False)
    print(f"{len(failures)} failed")
    sys.exit(1)


def flag(args, name):
    """The value of --name=VALUE in args, or None."""
    return next((a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")), None)


def mount_of(container, pod, path):
    """The volume whose mount holds path (the longest matching mountPath)."""
    mounts = [m for m in container["volumeMounts"]
              if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")]
    if not mounts:
        return None
    name = max(mounts, key=lambda m: len(m["mountPath"]))["name"]
    return next(v for v in pod["volumes"] if v["name"] == name)


def hardened(what, pod, containers):
    ctx = pod.get("securityContext", {})
    check(f"{what} runs as non-root", ctx.get("runAsNonRoot") is True)
    check(f"{what} uses the RuntimeDefault seccomp profile",
          ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault")
    for c in containers:
        sc = c.get("securityContext", {})
        check(f"{what}/{c['name']}: read-only root FS", sc.get("readOnlyRootFilesystem") is True)
        check(f"{what}/{c['name']}: no privilege escalation",
              sc.get("allowPrivilegeEscalation") is False)
        check(f"{what}/{c['name']}: drops ALL capabilities, adds none",
              sc.get("capabilities", {}).get("drop") == ["ALL"] and
              not sc.get("capabilities", {}).get("add"))
        check(f"{what}/{c['name']}: memory limit and requests",
              "memory" in c.get("resources", {}).get("limits", {}) and
              c.get("resources", {}).get("requests"))


builds = kustomize_render.render_builds()
install = builds["install"]

# --- Every object is complete, and the install holds what the docs promise.
for build, objects in builds.items():
    names = set()
    for o in objects:
        meta = o.get("metadata", {})
        ok = o.get("apiVersion") and o.get("kind") and meta.get("name")
        check(f"{build}: {o.get('kind')} {meta.get('name')} has apiVersion, kind, name", ok)
        names.add((o.get("kind"), meta.get("namespace"), meta.get("name")))
    check(f"{build}: no object is rendered twice", len(names) == len(objects))
check("the install is labelled part-of tandem",
      all(o["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "tandem"
          for o in install))

ns = find(install, "Namespace", "tandem-system")
check("tandem-system enforces Pod Security 'restricted'",
      ns["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted")

# --- RBAC: exactly what docs/controlplane.md lists, no wildcards.
sa = find(install, "ServiceAccount", "tandem-ca", "tandem-system")
role = find(install, "ClusterRole", "tandem-ca")
binding = find(install, "ClusterRoleBinding", "tandem-ca")
ns_role = find(install, "Role", "tandem-ca", "tandem-system")
ns_binding = find(install, "RoleBinding", "tandem-ca", "tandem-system")
rules = role["rules"]
check("no RBAC rule uses a wildcard",
      not any("*" in r.get(k, []) for r in rules + ns_role["rules"]
              for k in ("apiGroups", "resources", "verbs", "resourceNames")))
check("the CA may create tokenreviews, nothing else there",
      {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
       "verbs": ["create"]} in rules)
check("the CA may get and update only its own webhook configuration",
      {"apiGroups": ["admissionregistration.k8s.io"],
       "resources": ["mutatingwebhookconfigurations"],
       "resourceNames": ["tandem-sidecar-injector"], "verbs": ["get", "update"]} in rules)
check("the CA may list and watch namespaces (to find the meshed ones), nothing more",
      {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]} in rules)
check("cluster-wide, the CA reads and updates only ConfigMaps named tandem-ca-root",
      {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["tandem-ca-root"],
       "verbs": ["get", "list", "watch", "update"]} in rules)
check("the CA may create ConfigMaps (create cannot be limited to a name)",
      {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]} in rules)
check("the ClusterRole has those five rules only", len(rules) == 5)
check("in tandem-system the CA may get and update only the Lease tandem-ca, and create it",
      ns_role["rules"][:2] == [
          {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
           "resourceNames": ["tandem-ca"], "verbs": ["get", "update"]},
          {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
           "verbs": ["create"]}])
subject = [{"kind": "ServiceAccount", "name": "tandem-ca", "namespace": "tandem-system"}]
check("the binding gives the ClusterRole to the CA's service account",
      binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                             "name": "tandem-ca"} and binding["subjects"] == subject)
check("the RoleBinding gives the Role to the CA's service account",
      ns_binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": "tandem-ca"} and ns_binding["subjects"] == subject)
check("no other Role, RoleBinding, ClusterRole or ClusterRoleBinding",
      sorted(o["kind"] for o in install if o["kind"] in
             ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")) ==
      ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"])

# --- The CA Deployment.
ca = find(install, "Deployment", "tandem-ca", "tandem-system")
pod = ca["spec"]["template"]["spec"]
container = pod["containers"][0]
args = container["args"]
ports = {p["name"]: p["containerPort"] for p in container["ports"]}
check("the CA runs as its service account", pod["serviceAccountName"] == sa["metadata"]["name"])
hardened("tandem-ca", pod, pod["containers"])
check("the CA's image is tandem/ca:dev (kustomize images: retags it)",
      container["image"] == "tandem/ca:dev")
for probe in ("readinessProbe", "livenessProbe"):
    get = container.get(probe, {}).get("httpGet", {})
    check(f"the CA's {probe} asks its own health port (--health), apart from /metrics",
          get.get("path", "").startswith("/healthz/") and
          ports.get(get.get("port"), get.get("port")) == 15021 and
          flag(args, "health") == "0.0.0.0:15021")
check("two replicas, rolled one at a time with none down (state lives in the API)",
      ca["spec"]["replicas"] >= 2 and ca["spec"]["strategy"]["type"] == "RollingUpdate" and
      ca["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0)
root_volume = mount_of(container, pod, flag(args, "root-dir"))
check("the root key is the Secret tandem-ca-root, mounted 0400, read in secret-volume mode",
      flag(args, "root-dir-mode") == "secret-volume" and root_volume is not None and
      root_volume.get("secret", {}).get("secretName") == "tandem-ca-root" and
      root_volume["secret"].get("defaultMode") == 0o400)
check("the CA watches the mesh policy in ConfigMap tandem-mesh-policy",
      flag(args, "policy-configmap") == "tandem-system/tandem-mesh-policy" and
      flag(args, "policy-file") is None)
check("the CA keeps revocations in ConfigMap tandem-revocations, not on a volume",
      flag(args, "revocations-configmap") == "tandem-system/tandem-revocations" and
      flag(args, "state-dir") is None and
      not any("persistentVolumeClaim" in v for v in pod.get("volumes", [])) and
      not any(o["kind"] == "PersistentVolumeClaim" for o in install))
check("the Role lets the CA read, watch and update tandem-revocations, and only read "
      "and watch tandem-mesh-policy",
      {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["tandem-revocations"],
       "verbs": ["get", "list", "watch", "update"]} in ns_role["rules"] and
      {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["tandem-mesh-policy"],
       "verbs": ["get", "list", "watch"]} in ns_role["rules"] and len(ns_role["rules"]) == 4)
check("the CA's admin endpoint is on loopback",
      (flag(args, "admin") or "").startswith("127.0.0.1:"))
check("tokens are checked with TokenReview", "--token-review" in args)
check("the CA keeps tandem-ca-root in every namespace labelled for injection",
      flag(args, "trust-root-configmap") == "tandem-ca-root" and
      flag(args, "trust-root-namespaces") == "tandem-injection=enabled")
check("one replica writes them, elected with the Lease the Role names",
      flag(args, "leader-lease") == "tandem-system/tandem-ca" and
      any(e["name"] == "POD_NAME" and
          e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
          for e in container.get("env", [])))
template_volume = mount_of(container, pod, flag(args, "template") or "")
template_map = template_volume and template_volume.get("configMap", {}).get("name", "")
check("the sidecar template comes from the generated ConfigMap tandem-sidecar-template-<hash>",
      bool(template_map) and template_map.startswith("tandem-sidecar-template-"))
find(install, "ConfigMap", template_map or "?", "tandem-system")

# --- The webhook, the injector Service and the CA agree with each other.
hook_config = find(install, "MutatingWebhookConfiguration", "tandem-sidecar-injector")
hooks = hook_config["webhooks"]
check("one webhook", len(hooks) == 1)
hook = hooks[0]
check("the CA manages this webhook's caBundle (--webhook-config) and none is committed",
      flag(args, "webhook-config") == hook_config["metadata"]["name"] and
      "caBundle" not in hook["clientConfig"])
check("failurePolicy Fail, sideEffects None, admission v1, a timeout under 30 s",
      hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None" and
      hook["admissionReviewVersions"] == ["v1"] and 0 < hook["timeoutSeconds"] <= 30)
check("reinvocationPolicy is set", hook.get("reinvocationPolicy") in ("Never", "IfNeeded"))
exprs = hook["namespaceSelector"]["matchExpressions"]
check("only namespaces labelled tandem-injection=enabled",
      {"key": "tandem-injection", "operator": "In", "values": ["enabled"]} in exprs)
check("never tandem-system or kube-system",
      any(e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn" and
          {"tandem-system", "kube-system"} <= set(e["values"]) for e in exprs))
check("pods labelled sidecar.tandem.dev/inject=false are skipped",
      {"key": "sidecar.tandem.dev/inject", "operator": "NotIn", "values": ["false"]} in
      hook["objectSelector"]["matchExpressions"])
check("only pod CREATE is intercepted",
      hook["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                         "resources": ["pods"], "scope": "Namespaced"}])
svc_ref = hook["clientConfig"]["service"]
injector = find(install, "Service", svc_ref["name"], svc_ref["namespace"])
injector_port = next((p for p in injector["spec"]["ports"] if p["port"] == svc_ref["port"]), {})
listen_port = int((flag(args, "injector-listen") or ":0").rsplit(":", 1)[1])
check("the webhook's Service port reaches the CA's --injector-listen port",
      injector["spec"]["selector"] == ca["spec"]["selector"]["matchLabels"] and
      ports.get(injector_port.get("targetPort"), injector_port.get("targetPort")) ==
      listen_port != 0)
check("the injector's certificate names the Service the API server dials",
      f"{injector['metadata']['name']}.{injector['metadata']['namespace']}.svc" in
      (flag(args, "injector-dns-names") or "").split(","))
ca_svc = find(install, "Service", "tandem-ca", "tandem-system")
check("Service tandem-ca exposes the CA's 15012 and metrics 15014",
      sorted(p["port"] for p in ca_svc["spec"]["ports"]) == [15012, 15014])

# --- Disruption budget: covers the CA and never blocks a drain.
pdb = find(install, "PodDisruptionBudget", "tandem-ca", "tandem-system")
spec = pdb["spec"]
check("the PodDisruptionBudget selects the CA's pods",
      spec["selector"]["matchLabels"] == ca["spec"]["selector"]["matchLabels"])
check("the PodDisruptionBudget lets a drain evict one CA replica at a time",
      spec.get("maxUnavailable") == 1 and "minAvailable" not in spec)

# --- Root, policy, proxy config.
secret = find(install, "Secret", "tandem-ca-root", "tandem-system")
root_pem = base64.b64decode(secret["data"]["ca-cert.pem"]).decode()
check("the root Secret holds ca-key.pem and ca-cert.pem",
      sorted(secret["data"]) == ["ca-cert.pem", "ca-key.pem"] and
      "BEGIN CERTIFICATE" in root_pem)
trust = find(install, "ConfigMap", "tandem-ca-root", "tandem-system")
check("the public trust root holds the Secret's certificate and no key",
      trust["data"] == {"ca-cert.pem": root_pem})
policy = find(install, "ConfigMap", "tandem-mesh-policy", "tandem-system")
check("the mesh policy ConfigMap holds YAML",
      isinstance(yaml.safe_load(policy["data"]["mesh-policy.yaml"]), dict))
proxy_config = find(install, "ConfigMap", "tandem-proxy-config", "tandem-system")
check("sidecars take the mesh policy from their agent",
      json.loads(proxy_config["data"]["proxy.json"]).get("policy_from_agent") is True)

# --- The example app.
example = builds["example"]
check("the example overlay holds the whole install",
      {(o["kind"], o["metadata"]["name"]) for o in install} <=
      {(o["kind"], o["metadata"]["name"]) for o in example})
app_ns = find(example, "Namespace", "tandem-example")
check("the example namespace is labelled for injection",
      app_ns["metadata"]["labels"].get("tandem-injection") == "enabled")
copy = find(example, "ConfigMap", "tandem-proxy-config", "tandem-example")
check("the example namespace's tandem-proxy-config is the install's",
      copy["data"] == proxy_config["data"])
check("the example does not ship tandem-ca-root: tandem-ca writes it there",
      not any(o["kind"] == "ConfigMap" and o["metadata"]["name"] == "tandem-ca-root" and
              o["metadata"].get("namespace") == "tandem-example" for o in example))
server = find(example, "Deployment", "server", "tandem-example")
client = find(example, "Job", "client", "tandem-example")
service = find(example, "Service", "server", "tandem-example")
for what, workload in (("server", server), ("client", client)):
    wpod = workload["spec"]["template"]["spec"]
    hardened(f"example {what}", wpod, wpod["containers"])
    check(f"example {what} runs tandem/testapp:dev with its own service account",
          wpod["containers"][0]["image"] == "tandem/testapp:dev" and
          find(example, "ServiceAccount", wpod["serviceAccountName"], "tandem-example"))
    check(f"example {what} does not opt out of injection",
          workload["spec"]["template"]["metadata"].get("labels", {})
          .get("sidecar.tandem.dev/inject") != "false")
server_container = server["spec"]["template"]["spec"]["containers"][0]
server_ports = {p["name"]: p["containerPort"] for p in server_container["ports"]}
ready = server_container["readinessProbe"]["httpGet"]
serve_args = server_container["args"]
check("the server is ready on GET /ready on the port it serves",
      ready["path"] == "/ready" and serve_args[:2] == ["serve", "--port"] and
      server_ports.get(ready["port"], ready["port"]) == int(serve_args[2]))
check("the Service selects the server and targets its port",
      service["spec"]["selector"] == server["spec"]["selector"]["matchLabels"] and
      server_ports.get(service["spec"]["ports"][0]["targetPort"]) == int(serve_args[2]))
client_args = client["spec"]["template"]["spec"]["containers"][0]["args"]
check("the client calls the server's Service",
      client_args[:2] == ["client", "--url"] and
      client_args[2].startswith("http://$(SERVER_SERVICE_HOST):$(SERVER_SERVICE_PORT)/"))

# --- The sidecar template the injector renders (docs/injection.md).
template = yaml.safe_load((kustomize_render.KUBERNETES_DIR / "injection" /
                           "sidecar-template.yaml").read_text())
inits = {c["name"]: c for c in template["initContainers"]}
sidecars = {c["name"]: c for c in template["sidecars"]}
check("init container adds NET_ADMIN", "NET_ADMIN" in
      inits["tandem-init"]["securityContext"]["capabilities"]["add"])
check("init container keeps the agent's app-health port 15020 uncaptured",
      any(e["name"] == "TANDEM_EXCLUDE_INBOUND_PORTS" and e["value"] == "{{exclude_inbound_ports}}"
          for e in inits["tandem-init"]["env"]))
for side in ("tandem-agent", "tandem-proxy"):
    c = sidecars[side]
    check(f"{side} runs as uid 1337", c["securityContext"]["runAsUser"] == 1337)
    check(f"{side} drops all capabilities", c["securityContext"]["capabilities"]["drop"] == ["ALL"])
    check(f"{side} has a read-only root", c["securityContext"]["readOnlyRootFilesystem"])
    check(f"{side} runs from the one sidecar image", c["image"] == "{{proxy_image}}")
agent_args = sidecars["tandem-agent"]["args"]
check("agent serves app health on 15020 and metrics on 15019 (scraped for the alerts)",
      "--app-health=0.0.0.0:15020" in agent_args and "--metrics=0.0.0.0:15019" in agent_args)
proxy = sidecars["tandem-proxy"]
check("readiness probes 15021", proxy["readinessProbe"]["httpGet"]["port"] == 15021)
check("app held until the proxy is ready (startupProbe)", "startupProbe" in proxy)
check("classic mode holds the app with a postStart hook",
      "--wait-ready=127.0.0.1:15021" in
      template["classicProxyLifecycle"]["postStart"]["exec"]["command"])
token = next(v for v in template["volumes"] if v["name"] == "tandem-token")
src = token["projected"]["sources"][0]["serviceAccountToken"]
check("projected token has the CA audience", src["audience"] == "istio-ca")
check("metrics scraping is annotated", template["podAnnotations"]["prometheus.io/port"] == "15090")
print(f"{len(failures)} failed" if failures else "all manifest checks passed")
sys.exit(1 if failures else 0)
