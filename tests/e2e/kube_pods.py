#!/usr/bin/env python3
"""What the Kubernetes control plane does between a Deployment and a running pod, for
kube_e2e_test.sh, where podman is the pod runtime and there is no API server:

  kube_pods.py review DEPLOYMENT.yaml NAMESPACE > review.json
      the AdmissionReview v1 the API server sends a mutating webhook when the
      Deployment's ReplicaSet creates a pod (a Pod with generateName, no name yet);
  kube_pods.py admit REVIEW.json RESPONSE.json > pod.json
      the pod after the webhook: the response's JSONPatch applied (python3-jsonpatch,
      an RFC 6902 implementation that is not ours); fails unless allowed;
  kube_pods.py podman POD.json NAME TOKEN_DIR > pod.yaml
      the admitted pod as podman 4.3's `kube play` can run it. Each change stands for
      what a kubelet does that podman 4.3 does not (measured here):
        - metadata.name from generateName (the API server names the pod);
        - env valueFrom fieldRef metadata.namespace (unsupported by podman: "fieldPath
          metadata.namespace is either not valid or not supported") becomes its value;
        - $(VAR) in command/args expanded from the container's env (podman passes
          them through literally);
        - the projected service-account token (podman has no projected volumes)
          becomes a hostPath directory holding a token minted for the pod's
          service account with audience istio-ca, as the kubelet would write it;
        - annotations longer than 63 characters are dropped (podman 4.3 checks
          annotation values against the label limit: "value length exceeds
          Kubernetetes max 63"; Kubernetes allows 256 KiB): only the injector's
          sidecar.tandem.dev/status, which nothing in the pod reads;
        - containers' `ports` lists are dropped: in Kubernetes they are informational,
          but podman 4.3 binds each containerPort on the host ("cannot listen on the
          TCP port: listen tcp4 :15020: bind: address already in use" for the second
          pod);
        - restartPolicy Always becomes OnFailure (podman 4.3 applies the pod's policy
          to init containers and would restart tandem-init forever);
        - native sidecars are not supported by podman 4.3: the test injects the
          classic layout (sidecar.tandem.dev/sidecar-mode: classic), and this refuses
          a pod with restartable init containers rather than run it wrongly.
      Everything else (containers, probes, securityContext, volumes, the configMaps
      given to kube play with --configmap) is the injector's output as it is."""
import base64
import copy
import json
import re
import sys

import jsonpatch
import yaml


def fail(message):
    print(f"kube_pods.py: {message}", file=sys.stderr)
    sys.exit(1)


def review(deployment_file, namespace):
    with open(deployment_file) as f:
        deployment = yaml.safe_load(f)
    template = deployment["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {**copy.deepcopy(template.get("metadata", {})),
                        "generateName": deployment["metadata"]["name"] + "-",
                        "namespace": namespace},
           "spec": copy.deepcopy(template["spec"])}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "e2e-" + deployment["metadata"]["name"],
                        "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "namespace": namespace, "operation": "CREATE", "object": pod}}


def admit(review_file, response_file):
    with open(review_file) as f:
        request = json.load(f)["request"]
    with open(response_file) as f:
        response = json.load(f).get("response", {})
    if response.get("uid") != request["uid"]:
        fail(f"the response's uid {response.get('uid')!r} is not {request['uid']!r}")
    if response.get("allowed") is not True:
        fail(f"the webhook did not allow the pod: {response.get('status')}")
    if response.get("patchType") != "JSONPatch":
        fail(f"no JSONPatch in the response: {sorted(response)}")
    patch = json.loads(base64.b64decode(response["patch"]))
    return jsonpatch.apply_patch(request["object"], patch)


def expand(text, env):
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: env.get(m.group(1), m.group(0)), text)


def for_podman(pod_file, name, token_dir):
    with open(pod_file) as f:
        pod = json.load(f)
    meta, spec = pod["metadata"], pod["spec"]
    namespace = meta["namespace"]
    meta.pop("generateName", None)
    meta["name"] = name
    annotations = meta.get("annotations", {})
    for key in [k for k, v in annotations.items() if len(v) > 63]:
        if key != "sidecar.tandem.dev/status":
            fail(f"annotation {key} is too long for podman 4.3 and is not ours to drop")
        del annotations[key]
    if spec.get("restartPolicy", "Always") == "Always":
        spec["restartPolicy"] = "OnFailure"
    for c in spec.get("initContainers", []):
        if c.get("restartPolicy") == "Always":
            fail(f"init container {c['name']} is a native sidecar, which podman 4.3 "
                 "cannot run: inject with sidecar.tandem.dev/sidecar-mode: classic")
    for c in spec.get("initContainers", []) + spec["containers"]:
        if any("hostPort" in p for p in c.get("ports", [])):
            fail(f"container {c['name']} asks for a hostPort")
        c.pop("ports", None)
        env = {}
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if ref == "metadata.namespace":
                e.pop("valueFrom")
                e["value"] = namespace
            if "value" in e:
                env[e["name"]] = e["value"]
        for key in ("command", "args"):
            if key in c:
                c[key] = [expand(a, env) for a in c[key]]
    for v in spec.get("volumes", []):
        if "projected" in v:
            sources = v["projected"]["sources"]
            if [list(s) for s in sources] != [["serviceAccountToken"]]:
                fail(f"volume {v['name']}: only a projected token is handled")
            del v["projected"]
            v["hostPath"] = {"path": token_dir, "type": "Directory"}
    return pod


command = sys.argv[1] if len(sys.argv) > 1 else ""
if command == "review" and len(sys.argv) == 4:
    json.dump(review(sys.argv[2], sys.argv[3]), sys.stdout)
elif command == "admit" and len(sys.argv) == 4:
    json.dump(admit(sys.argv[2], sys.argv[3]), sys.stdout)
elif command == "podman" and len(sys.argv) == 5:
    yaml.safe_dump(for_podman(sys.argv[2], sys.argv[3], sys.argv[4]), sys.stdout,
                   sort_keys=False)
else:
    fail("usage: see the file's comment")
