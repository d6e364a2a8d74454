"""Renders deploy/kubernetes as a user would, for the deploy tests: a copy of the tree
(never the checkout's own root/*.pem), a throwaway root made by root/make-root.sh, then
`kubectl kustomize` of the install and of the example overlay.

A test that imports this exits 77 (skipped) when python3-yaml or kubectl is missing."""
import pathlib
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is not installed")
    sys.exit(77)

KUBERNETES_DIR = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
# What users apply: the install, and the install plus the example app.
BUILDS = {"install": ".", "example": "overlays/example"}

if shutil.which("kubectl") is None:
    print("SKIP: kubectl is not installed (its built-in kustomize renders deploy/kubernetes)")
    sys.exit(77)


def render_builds():
    """Returns {build name: [object, ...]} for every entry of BUILDS; exits 1 with
    kubectl's message when a build does not render."""
    rendered = {}
    with tempfile.TemporaryDirectory() as tmp:
        tree = pathlib.Path(tmp) / "kubernetes"
        shutil.copytree(KUBERNETES_DIR, tree, ignore=shutil.ignore_patterns("*.pem"))
        made = subprocess.run([str(tree / "root" / "make-root.sh")],
                              capture_output=True, text=True)
        if made.returncode != 0:
            print(f"FAIL: root/make-root.sh exited {made.returncode}:\n{made.stderr}")
            sys.exit(1)
        for name, sub in BUILDS.items():
            out = subprocess.run(["kubectl", "kustomize", str(tree / sub)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"FAIL: kubectl kustomize {sub} exited {out.returncode}:\n{out.stderr}")
                sys.exit(1)
            rendered[name] = [d for d in yaml.safe_load_all(out.stdout) if d is not None]
    return rendered
