#!/usr/bin/env python3
"""Validates every object that `kubectl kustomize deploy/kubernetes` and the example
overlay render (and the example's workloads after `tandemctl kube-inject`, with native
and with classic sidecars)
against the Kubernetes API of one named version, with kubectl
--validate=strict's semantics: an unknown field, a wrong type, a missing required
field, a value outside an enum or an int32, or an unknown kind is an error.

The schema: the npm package kubernetes-models (pinned in tests/k8s-schema), the
Kubernetes 1.36 API generated from that release's OpenAPI definitions, checked twice:
- its TypeScript types, by the TypeScript compiler: each object becomes a typed object
  literal, which tsc refuses for a property the type lacks (at any depth), a value of
  another type or outside an enum, and a required property left out;
- its JSON Schema validators (validate.mjs): types, required fields, enums, formats.
Negative fixtures (the rendered CA Deployment with one defect each) prove that the
checks catch each kind of mistake, so a pass is not parsing alone.
Needs `./dev setup` (npm ci in tests/k8s-schema)."""
import copy
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import kustomize_render

SCHEMA_DIR = pathlib.Path(__file__).resolve().parent / "k8s-schema"
MODULES = SCHEMA_DIR / "node_modules"
failures = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + (f"\n{detail}" if detail and not ok else ""))
    if not ok:
        failures.append(what)


def label(obj):
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def typecheck(entries):
    """The TypeScript check of every object of entries [(name, object)]:
    {name: [tsc error, ...]}. One tsc run over one file, one typed constant each."""
    lines = []
    spans = []  # (first line, last line, name), 1-based as tsc reports them
    for name, obj in entries:
        # kubernetes-models/<apiVersion>/<Kind> declares interface I<Kind>.
        module = (MODULES / "kubernetes-models" / obj.get("apiVersion", "") /
                  obj.get("kind", "")).as_posix()
        text = (f"export const object{len(spans)}: import({json.dumps(module)})."
                f"I{obj.get('kind')} = {json.dumps(obj, indent=2)};").split("\n")
        spans.append((len(lines) + 1, len(lines) + len(text), name))
        lines.extend(text)
    with tempfile.TemporaryDirectory() as tmp:
        source = pathlib.Path(tmp) / "objects.ts"
        source.write_text("\n".join(lines) + "\n")
        out = subprocess.run(
            ["node", str(MODULES / "typescript" / "bin" / "tsc"), "--noEmit", "--strict",
             "--skipLibCheck", "--pretty", "false", "--target", "es2022", "--module", "es2022",
             "--moduleResolution", "bundler", str(source)],
            capture_output=True, text=True)
    errors = {name: [] for name, _ in entries}
    unplaced = []
    last = unplaced
    for line in out.stdout.splitlines():
        m = re.match(r".*objects\.ts\((\d+),\d+\): (error .*)", line)
        if m:
            at = int(m.group(1))
            owner = next((n for first, end, n in spans if first <= at <= end), None)
            last = errors[owner] if owner else unplaced
            last.append(m.group(2))
        elif line.startswith(" ") and last:
            last[-1] += "\n" + line  # the indented detail of the error before
        elif line.strip():
            unplaced.append(line)
    # tsc exits 2 when it reports errors in the file; anything else is tsc failing.
    if out.returncode not in (0, 2) or unplaced:
        print(f"FAIL: tsc exited {out.returncode}:\n{out.stdout}{out.stderr}")
        sys.exit(1)
    return errors


def unwrapped(obj):
    """obj with its Secret data on one line per value. kustomize wraps base64 at 76
    columns; the API server decodes it with Go's encoding/base64, which skips line
    breaks, but the schema's "byte" format does not allow them."""
    if obj.get("kind") != "Secret" or "data" not in obj:
        return obj
    return {**obj, "data": {k: v.replace("\n", "") for k, v in obj["data"].items()}}


def validate(entries):
    """The JSON Schema check of every object: {name: [error, ...]}."""
    out = subprocess.run(["node", str(SCHEMA_DIR / "validate.mjs")],
                         input=json.dumps([unwrapped(obj) for _, obj in entries]),
                         capture_output=True, text=True)
    if out.returncode != 0:
        print(f"FAIL: validate.mjs exited {out.returncode}:\n{out.stdout}{out.stderr}")
        sys.exit(1)
    return {name: errs for (name, _), errs in zip(entries, json.loads(out.stdout))}


if shutil.which("node") is None:
    print("FAIL: node is not installed: run ./dev setup")
    sys.exit(1)
if not (MODULES / "typescript").is_dir() or not (MODULES / "kubernetes-models").is_dir():
    print(f"FAIL: {MODULES} is missing its packages: run ./dev setup "
          f"(npm ci --prefix tests/k8s-schema)")
    sys.exit(1)

# kubernetes-models 5.x is generated from Kubernetes v1.36.0 (its changelog for 5.0.0).
KUBE_VERSION = "1.36"
models_version = json.loads((MODULES / "kubernetes-models" / "package.json").read_text())["version"]
if not models_version.startswith("5."):
    print(f"FAIL: kubernetes-models {models_version} is not the 5.x this test names as "
          f"Kubernetes {KUBE_VERSION}: update KUBE_VERSION with the package")
    sys.exit(1)
print(f"schema: Kubernetes {KUBE_VERSION} API (npm kubernetes-models {models_version}, "
      f"generated from Kubernetes' OpenAPI definitions), strict: unknown fields are errors")

builds = kustomize_render.render_builds()
entries = []
for build, objects in builds.items():
    for obj in objects:
        entries.append((f"{build}: {label(obj)}", obj))
# The sidecar as the injector adds it: the example's workloads through `tandemctl
# kube-inject` (the webhook's code path), in both container layouts.
if len(sys.argv) < 2:
    print("usage: deploy_schema_test.py TANDEMCTL")
    sys.exit(2)
workloads = [o for o in builds["example"] if o["metadata"].get("namespace") == "tandem-example"
             and o["kind"] in ("Deployment", "Job")]
for mode in ("native", "classic"):
    marked = copy.deepcopy(workloads)
    for w in marked:
        w["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {})[
            "sidecar.tandem.dev/sidecar-mode"] = mode
    injected = subprocess.run(
        [sys.argv[1], "kube-inject", "-f", "-",
         f"--template={kustomize_render.KUBERNETES_DIR / 'injection' / 'sidecar-template.yaml'}"],
        input="\n---\n".join(json.dumps(w) for w in marked), capture_output=True, text=True)
    check(f"tandemctl kube-inject ({mode} sidecars) succeeds", injected.returncode == 0,
          injected.stderr)
    for obj in kustomize_render.yaml.safe_load_all(injected.stdout):
        if obj:
            entries.append((f"injected, {mode} sidecars: {label(obj)}", obj))

ca = next(o for o in builds["install"] if o["kind"] == "Deployment" and
          o["metadata"]["name"] == "tandem-ca")


def broken(change):
    obj = copy.deepcopy(ca)
    change(obj)
    return obj


def container(obj):
    return obj["spec"]["template"]["spec"]["containers"][0]


# One defect each, and what each check must say about it (None: not its job).
NEGATIVES = {
    "unknown field (securityContext.readOnlyRootFilesytem)": (
        broken(lambda o: container(o)["securityContext"].update(readOnlyRootFilesytem=True)),
        "'\"readOnlyRootFilesytem\"' does not exist in type", None),
    "wrong type (spec.replicas: \"1\")": (
        broken(lambda o: o["spec"].update(replicas="1")),
        "Type 'string' is not assignable to type 'number'", "/spec/replicas must be integer"),
    "wrong type deep in a list (ports[0].containerPort: true)": (
        broken(lambda o: container(o)["ports"][0].update(containerPort=True)),
        "Type 'boolean' is not assignable to type 'number'", "containerPort must be integer"),
    "not an int32 (spec.replicas: 1.5)": (
        broken(lambda o: o["spec"].update(replicas=1.5)),
        None, "/spec/replicas must be integer"),
    "outside an enum (strategy.type: Recreat)": (
        broken(lambda o: o["spec"]["strategy"].update(type="Recreat")),
        "Type '\"Recreat\"' is not assignable to type", "must be equal to one of the allowed"),
    "missing required field (spec.selector)": (
        broken(lambda o: o["spec"].pop("selector")),
        "'\"selector\"' is missing", "must have required property selector"),
    "unknown kind (Deploymnet)": (
        broken(lambda o: o.update(kind="Deploymnet")),
        "Cannot find module", "no model for apps/v1 Deploymnet"),
}

checked = entries + [(f"negative: {n}", obj) for n, (obj, _, _) in NEGATIVES.items()]
by_tsc = typecheck(checked)
by_schema = validate(checked)

for name, _ in entries:
    errs = by_tsc[name] + by_schema[name]
    check(f"{name} matches the Kubernetes {KUBE_VERSION} schema", not errs, "\n".join(errs))
for name, (_, tsc_says, schema_says) in NEGATIVES.items():
    for checker, says, errs in (("tsc", tsc_says, by_tsc[f"negative: {name}"]),
                                ("validate", schema_says, by_schema[f"negative: {name}"])):
        if says is not None:
            check(f"{checker} refuses {name}", any(says in e for e in errs),
                  f"expected an error containing {says!r}, got: {errs}")
check("both builds render objects", all(builds.values()))

print(f"{len(entries)} objects checked against Kubernetes {KUBE_VERSION}, "
      f"{len(NEGATIVES)} negative fixtures")
print(f"{len(failures)} failed" if failures else "all schema checks passed")
sys.exit(1 if failures else 0)
