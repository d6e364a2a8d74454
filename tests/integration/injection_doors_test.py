#!/usr/bin/env python3
"""The two doors of sidecar injection, as real processes: tandem-ca's admission webhook
(HTTPS /inject, certificate from its own CA) and `tandemctl kube-inject`.

- For the same pod, the webhook's RFC 6902 patch, applied by an outside implementation
  (python3-jsonpatch), gives exactly the pod that kube-inject prints.
- A second review of the injected pod returns no patch (idempotent).
- A bad annotation is refused by both doors with the same message naming it.
- A body that is not an AdmissionReview gets HTTP 400 with the reason.

usage: injection_doors_test.py TANDEM_CA TANDEMCTL TEMPLATE"""
import base64
import copy
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time
import socket
import urllib.request

import jsonpatch
import yaml

CA_BIN, TANDEMCTL, TEMPLATE = sys.argv[1:4]
failures = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + (f"\n{detail}" if detail and not ok else ""))
    if not ok:
        failures.append(what)


POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"generateName": "server-", "namespace": "shop",
                 "labels": {"app": "server"},
                 "annotations": {"sidecar.tandem.dev/exclude-inbound-ports": "9090"}},
    "spec": {
        "serviceAccountName": "server",
        "containers": [{
            "name": "server", "image": "tandem/testapp:dev",
            "args": ["serve", "--port", "8080"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
            "livenessProbe": {"tcpSocket": {"port": 8080}}}]}}


def review(pod, uid="4f1c"):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "namespace": "shop", "operation": "CREATE", "object": pod}}


def kube_inject(pod):
    return subprocess.run([TANDEMCTL, "kube-inject", "-f", "-", f"--template={TEMPLATE}",
                           "--namespace=shop"],
                          input=json.dumps(pod), capture_output=True, text=True)


work = tempfile.mkdtemp(prefix="tandem-doors-")
log_path = os.path.join(work, "ca.log")
subprocess.run([CA_BIN, "gen-signing-key", f"--out={work}/token.key"], check=True,
               capture_output=True)
with open(f"{work}/token.pub", "w") as pub:
    subprocess.run([CA_BIN, "public-key", f"--key={work}/token.key"], check=True,
                   stdout=pub)
with open(log_path, "w") as log:
    ca = subprocess.Popen(
        [CA_BIN, "serve", f"--root-dir={work}/root", "--listen=127.0.0.1:0",
         "--metrics=127.0.0.1:0", f"--token-public-key={work}/token.pub",
         "--injector-listen=127.0.0.1:0", "--injector-dns-names=tandem-injector.tandem-system.svc",
         "--webhook-config=", f"--template={TEMPLATE}"],
        stdout=log, stderr=subprocess.STDOUT)


def ca_log():
    with open(log_path) as f:
        return f.read()


def listening(listener):
    """The port tandem-ca logged for `listener`, waiting for the line (bounded)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(rf"listening listener={listener} address=\S+:(\d+)", ca_log())
        if m:
            return int(m.group(1))
        if ca.poll() is not None:
            break
        time.sleep(0.05)
    print(f"FAIL: tandem-ca logged no {listener} listener\n{ca_log()}")
    ca.kill()
    sys.exit(1)


try:
    inject_port = listening("injector")
    metrics_port = listening("metrics")
    bundle = urllib.request.urlopen(
        f"http://127.0.0.1:{metrics_port}/trust-bundle", timeout=10).read().decode()
    tls = ssl.create_default_context(cadata=bundle)
    tls.minimum_version = ssl.TLSVersion.TLSv1_3

    def post(body):
        """POSTs to /inject over TLS, dialling 127.0.0.1 but verifying the Service's
        name, as the API server does; returns (status, body)."""
        raw = socket.create_connection(("127.0.0.1", inject_port), timeout=10)
        with tls.wrap_socket(raw, server_hostname="tandem-injector.tandem-system.svc") as c:
            data = body.encode()
            c.sendall(b"POST /inject HTTP/1.1\r\nHost: tandem-injector.tandem-system.svc\r\n"
                      b"Content-Type: application/json\r\nContent-Length: " +
                      str(len(data)).encode() + b"\r\n\r\n" + data)
            answer = b""
            while chunk := c.recv(65536):
                answer += chunk
        head, _, payload = answer.partition(b"\r\n\r\n")
        return int(head.split()[1]), payload.decode()

    # The same pod through both doors.
    status, body = post(json.dumps(review(POD)))
    response = json.loads(body)["response"] if status == 200 else {}
    check("the webhook answers over TLS 1.3 for the Service's name",
          status == 200 and response.get("uid") == "4f1c", body[:500])
    check("the webhook allows the pod with a JSONPatch",
          response.get("allowed") is True and response.get("patchType") == "JSONPatch")
    patch = json.loads(base64.b64decode(response.get("patch", "W10=")))
    by_webhook = jsonpatch.apply_patch(copy.deepcopy(POD), patch)
    door = kube_inject(POD)
    check("tandemctl kube-inject injects the same pod", door.returncode == 0, door.stderr)
    by_cli = yaml.safe_load(door.stdout)
    check("the webhook's patch gives exactly the pod kube-inject prints",
          by_webhook == by_cli,
          json.dumps(by_webhook, sort_keys=True)[:1500] + "\n!=\n" +
          json.dumps(by_cli, sort_keys=True)[:1500])

    status, body = post(json.dumps(review(by_webhook, uid="again")))
    again = json.loads(body)["response"] if status == 200 else {}
    check("an injected pod is allowed again with no patch",
          again.get("allowed") is True and "patch" not in again, body[:500])

    # A bad annotation: refused by both, with the same message.
    bad = copy.deepcopy(POD)
    bad["metadata"]["annotations"]["sidecar.tandem.dev/inbound-mode"] = "LAX"
    status, body = post(json.dumps(review(bad, uid="bad")))
    refused = json.loads(body)["response"] if status == 200 else {}
    message = refused.get("status", {}).get("message", "")
    check("the webhook refuses a bad annotation value (allowed: false, code 400)",
          refused.get("allowed") is False and refused.get("status", {}).get("code") == 400,
          body[:500])
    reason = 'annotation sidecar.tandem.dev/inbound-mode: "LAX": must be STRICT or PERMISSIVE'
    check("the webhook's refusal names the annotation and the value",
          message == f"tandem sidecar injection: {reason}", message)
    door = kube_inject(bad)
    check("kube-inject refuses it with the same reason, naming the object",
          door.returncode == 2 and door.stderr == f"tandemctl: Pod shop/server-: {reason}\n",
          door.stderr)

    status, body = post("this is not JSON")
    check("a body that is not an AdmissionReview gets 400 with the reason",
          status == 400 and "JSON" in body, f"{status} {body[:300]}")

    # tandem-ca's refusals of injector flags, before it serves anything.
    for args, reason in (
            (["--template=/nonexistent/template.yaml"],
             "--webhook-config, --injector-dns-names, --template, --proxy-image and "
             "--sidecar-ca-address need --injector-listen"),
            (["--injector-listen=127.0.0.1:0", "--webhook-config=",
              f"--template={work}/missing.yaml"],
             f"--template: cannot read {work}/missing.yaml"),
            (["--injector-listen=127.0.0.1:0", "--webhook-config=",
              f"--template={work}/token.pub"],
             f"--template: {work}/token.pub: must be one YAML document holding a mapping")):
        refused = subprocess.run(
            [CA_BIN, "serve", f"--root-dir={work}/root", "--listen=127.0.0.1:0",
             "--metrics=", f"--token-public-key={work}/token.pub"] + args,
            capture_output=True, text=True, timeout=30)
        check(f"tandem-ca refuses {args[-1]} ({reason.strip()})",
              refused.returncode == 2 and reason in refused.stderr, refused.stderr)
finally:
    ca.terminate()
    try:
        ca.wait(timeout=10)
    except subprocess.TimeoutExpired:
        ca.kill()
    if failures:
        print("--- tandem-ca log ---\n" + ca_log())
    subprocess.run(["rm", "-rf", work])

print(f"{len(failures)} failed" if failures else "all injection door checks passed")
sys.exit(1 if failures else 0)
