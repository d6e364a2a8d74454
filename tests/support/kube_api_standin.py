#!/usr/bin/env python3
"""A stand-in for kube-apiserver (Debian packages none) that implements the part of the
API contract tandem-ca relies on, over HTTPS, for tests:

- Objects: namespaces, configmaps (per namespace and across all: /api/v1/configmaps),
  coordination.k8s.io/v1 leases, and the cluster-scoped
  admissionregistration.k8s.io/v1 mutatingwebhookconfigurations. Every write bumps one
  global resourceVersion, stored in
  metadata.resourceVersion, with uid and creationTimestamp.
- GET (object or list; a list carries metadata.resourceVersion), POST (409
  AlreadyExists for a taken name, 404 for a missing namespace), PUT (409 Conflict when
  metadata.resourceVersion is not the stored one), DELETE.
- labelSelector (k=v, k!=v, k; comma = and) and fieldSelector (metadata.name=,
  metadata.namespace=) on lists and watches; anything else is 400.
- WATCH (?watch=1&resourceVersion=RV&timeoutSeconds=N&allowWatchBookmarks=true):
  HTTP 200, Transfer-Encoding: chunked, one JSON WatchEvent per line: every retained
  event after RV, then new ones as they happen (ADDED/MODIFIED/DELETED), BOOKMARK
  events every --bookmark-interval when asked for, and the stream ends after
  timeoutSeconds. A RV older than the retained history gets an ERROR event whose object
  is a Status with code 410 and reason "Expired", then the end of the stream.
- Authentication: "Authorization: Bearer T" where T is the --token-file's content,
  read for every request (so a test can rotate it); otherwise 401 with a Status.

Test controls (no authentication), POST with a JSON body:
  /_test/compact            forget the event history (older watches get 410)
  /_test/fail               {"method": M, "path": P, "status": S, "count": N}: answer
                            the next N requests M (or "WATCH") whose path starts with P
                            with S (a Status; 409 as a Conflict, 410 as Expired)
  /_test/clear-failures     drop every /_test/fail rule
  /_test/bookmark           send a BOOKMARK on every open watch now
  /_test/close-watches      end every open watch stream
  GET /_test/requests       [{"method","path","token","status"}...] so far
Prints "listening on 127.0.0.1:PORT" once it serves (bind port 0 by default)."""
import argparse
import copy
import json
import ssl
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Condition()
OBJECTS = {}  # (resource, namespace or "", name) -> object
HISTORY = []  # (rv, resource, namespace, type, object)
STATE = {"rv": 100, "compacted": 100, "fail": [], "requests": [], "bookmark": 0, "close": 0}
ARGS = None

KINDS = {
    "namespaces": ("Namespace", "v1"),
    "configmaps": ("ConfigMap", "v1"),
    "leases": ("Lease", "coordination.k8s.io/v1"),
    "mutatingwebhookconfigurations": ("MutatingWebhookConfiguration",
                                      "admissionregistration.k8s.io/v1"),
}
# Kinds that live outside namespaces (besides namespaces themselves).
CLUSTER_KINDS = {"mutatingwebhookconfigurations"}
GROUPS = (["api", "v1"], ["apis", "coordination.k8s.io", "v1"],
          ["apis", "admissionregistration.k8s.io", "v1"])


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           409: "Conflict", 410: "Expired", 500: "InternalError"}


def parse_path(path):
    """(resource, namespace, name) with namespace None for all namespaces; or None."""
    parts = [p for p in path.split("/") if p]
    group = next((g for g in GROUPS if parts[:len(g)] == g), None)
    if group is None:
        return None
    rest = parts[len(group):]
    if rest == ["namespaces"]:
        return ("namespaces", "", None)
    if len(rest) == 2 and rest[0] == "namespaces":
        return ("namespaces", "", rest[1])
    if len(rest) in (1, 2) and rest[0] in CLUSTER_KINDS:
        return (rest[0], "", rest[1] if len(rest) == 2 else None)
    if len(rest) == 1 and rest[0] in KINDS:
        return (rest[0], None, None)
    if len(rest) in (3, 4) and rest[0] == "namespaces" and rest[2] in KINDS:
        return (rest[2], rest[1], rest[3] if len(rest) == 4 else None)
    return None


def selector_matches(obj, labels_sel, fields_sel):
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in labels_sel:
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k) != v.lstrip("="):
                return False
        elif term not in labels:
            return False
    meta = obj.get("metadata", {})
    for k, v in fields_sel:
        if meta.get(k, "") != v:
            return False
    return True


def parse_selectors(query):
    labels = [t for t in query.get("labelSelector", [""])[0].split(",") if t]
    fields = []
    for term in [t for t in query.get("fieldSelector", [""])[0].split(",") if t]:
        k, _, v = term.partition("=")
        if k not in ("metadata.name", "metadata.namespace") or not _:
            return None
        fields.append((k.split(".", 1)[1], v.lstrip("=")))
    return labels, fields


def record(resource, ns, etype, obj):
    """Stores one change under LOCK: bumps the resourceVersion, logs the event."""
    STATE["rv"] += 1
    obj["metadata"]["resourceVersion"] = str(STATE["rv"])
    HISTORY.append((STATE["rv"], resource, ns, etype, copy.deepcopy(obj)))
    LOCK.notify_all()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.log_request_done(code)

    def log_request_done(self, code):
        with LOCK:
            STATE["requests"].append({"method": self.method, "path": self.path,
                                      "token": self.token, "status": code})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else None

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def handle_any(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        self.method = method
        self.token = ""
        if url.path.startswith("/_test/"):
            return self.control(method, url.path)
        watch = query.get("watch", ["0"])[0] in ("1", "true")
        if watch:
            self.method = "WATCH"
        auth = self.headers.get("Authorization", "")
        self.token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        with open(ARGS.token_file) as f:
            want = f.read().strip()
        if not self.token or self.token != want:
            return self.reply(401, status(401, "Unauthorized", "Unauthorized"))
        with LOCK:
            for rule in STATE["fail"]:
                if rule["count"] > 0 and rule["method"] == self.method and \
                        url.path.startswith(rule["path"]):
                    rule["count"] -= 1
                    code = rule["status"]
                    return self.reply(code, status(code, REASONS.get(code, "Unknown"),
                                                   f"injected by the test ({code})"))
        target = parse_path(url.path)
        if target is None:
            return self.reply(404, status(404, "NotFound", "the server could not find "
                                          "the requested resource"))
        resource, ns, name = target
        body = self.body() if method in ("POST", "PUT") else None
        if watch:
            return self.watch(resource, ns, query)
        with LOCK:
            if method == "GET":
                return self.get(resource, ns, name, query)
            if method == "POST" and name is None and ns is not None:
                return self.create(resource, ns, body)
            if method == "PUT" and name is not None:
                return self.update(resource, ns, name, body)
            if method == "DELETE" and name is not None:
                return self.delete(resource, ns, name)
        return self.reply(405, status(405, "MethodNotAllowed", "method not allowed"))

    def get(self, resource, ns, name, query):
        if name is not None:
            obj = OBJECTS.get((resource, ns, name))
            if obj is None:
                return self.reply(404, status(404, "NotFound",
                                              f'{resource} "{name}" not found'))
            return self.reply(200, obj)
        sel = parse_selectors(query)
        if sel is None:
            return self.reply(400, status(400, "BadRequest", "unsupported fieldSelector"))
        items = [o for (r, n, _), o in sorted(OBJECTS.items())
                 if r == resource and (ns is None or n == ns) and selector_matches(o, *sel)]
        kind, api = KINDS[resource]
        return self.reply(200, {"kind": kind + "List", "apiVersion": api,
                                "metadata": {"resourceVersion": str(STATE["rv"])},
                                "items": items})

    def create(self, resource, ns, obj):
        if not isinstance(obj, dict) or not obj.get("metadata", {}).get("name"):
            return self.reply(400, status(400, "BadRequest", "metadata.name is required"))
        name = obj["metadata"]["name"]
        if ns and ("namespaces", "", ns) not in OBJECTS:
            return self.reply(404, status(404, "NotFound", f'namespaces "{ns}" not found'))
        if (resource, ns, name) in OBJECTS:
            return self.reply(409, status(409, "AlreadyExists",
                                          f'{resource} "{name}" already exists'))
        kind, api = KINDS[resource]
        obj["kind"], obj["apiVersion"] = kind, api
        meta = obj["metadata"]
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if ns:
            meta["namespace"] = ns
        OBJECTS[(resource, ns, name)] = obj
        record(resource, ns, "ADDED", obj)
        return self.reply(201, obj)

    def update(self, resource, ns, name, obj):
        current = OBJECTS.get((resource, ns, name))
        if current is None:
            return self.reply(404, status(404, "NotFound", f'{resource} "{name}" not found'))
        if not isinstance(obj, dict) or obj.get("metadata", {}).get("name") != name:
            return self.reply(400, status(400, "BadRequest", "metadata.name must match"))
        rv = obj["metadata"].get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            return self.reply(409, status(
                409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": '
                "the object has been modified; please apply your changes to the latest "
                "version and try again"))
        kind, api = KINDS[resource]
        obj["kind"], obj["apiVersion"] = kind, api
        for k in ("uid", "creationTimestamp", "namespace"):
            if k in current["metadata"]:
                obj["metadata"][k] = current["metadata"][k]
        if json.dumps(obj, sort_keys=True) == json.dumps(current, sort_keys=True):
            return self.reply(200, current)  # a no-op update changes nothing
        OBJECTS[(resource, ns, name)] = obj
        record(resource, ns, "MODIFIED", obj)
        return self.reply(200, obj)

    def delete(self, resource, ns, name):
        obj = OBJECTS.pop((resource, ns, name), None)
        if obj is None:
            return self.reply(404, status(404, "NotFound", f'{resource} "{name}" not found'))
        if resource == "namespaces":
            for key in [k for k in OBJECTS if k[1] == name]:
                record(key[0], name, "DELETED", OBJECTS.pop(key))
        record(resource, ns, "DELETED", obj)
        return self.reply(200, obj)

    def watch(self, resource, ns, query):
        sel = parse_selectors(query)
        if sel is None:
            return self.reply(400, status(400, "BadRequest", "unsupported fieldSelector"))
        timeout = float(query.get("timeoutSeconds", ["300"])[0])
        bookmarks = query.get("allowWatchBookmarks", ["false"])[0] == "true"
        rv_text = query.get("resourceVersion", [""])[0]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.log_request_done(200)
        kind, api = KINDS[resource]

        def send(event):
            data = (json.dumps(event) + "\n").encode()
            # Split each event over two chunks: clients must not rely on chunk = event.
            half = len(data) // 2
            for part in (data[:half], data[half:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()

        def matches(r, n, obj):
            return r == resource and (ns is None or n == ns) and selector_matches(obj, *sel)

        try:
            with LOCK:
                if rv_text in ("", "0"):
                    # Not what tandem-ca does (it lists first): the current state as ADDED.
                    pending = [(STATE["rv"], "ADDED", o) for (r, n, _), o in
                               sorted(OBJECTS.items()) if matches(r, n, o)]
                    rv = STATE["rv"]
                else:
                    rv = int(rv_text)
                    if rv < STATE["compacted"]:
                        send({"type": "ERROR", "object": status(
                            410, "Expired",
                            f"too old resource version: {rv} ({STATE['compacted']})")})
                        return self.end_chunks()
                    pending = []
                close_seen, bookmark_seen = STATE["close"], STATE["bookmark"]
            end = time.monotonic() + timeout
            next_bookmark = time.monotonic() + ARGS.bookmark_interval
            while True:
                for _, etype, obj in pending:
                    send({"type": etype, "object": obj})
                with LOCK:
                    pending = [(e[0], e[3], e[4]) for e in HISTORY
                               if e[0] > rv and matches(e[1], e[2], e[4])]
                    if pending:
                        rv = pending[-1][0]
                        continue
                    now = time.monotonic()
                    if now >= end or STATE["close"] != close_seen:
                        break
                    if bookmarks and (now >= next_bookmark or
                                      STATE["bookmark"] != bookmark_seen):
                        bookmark_seen = STATE["bookmark"]
                        next_bookmark = now + ARGS.bookmark_interval
                        # The bookmark carries the newest resourceVersion of all.
                        rv = max(rv, STATE["rv"])
                        pending = [(rv, "BOOKMARK", {"kind": kind, "apiVersion": api,
                                                     "metadata": {"resourceVersion": str(rv)}})]
                        continue
                    LOCK.wait(min(end, next_bookmark) - now)
            self.end_chunks()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True

    def control(self, method, path):
        body = self.body() if method == "POST" else None
        with LOCK:
            if path == "/_test/requests":
                return self.reply(200, STATE["requests"])
            if path == "/_test/compact":
                HISTORY.clear()
                STATE["compacted"] = STATE["rv"] + 1
            elif path == "/_test/fail":
                STATE["fail"].append(dict(body))
            elif path == "/_test/clear-failures":
                STATE["fail"].clear()
            elif path == "/_test/bookmark":
                STATE["bookmark"] += 1
            elif path == "/_test/close-watches":
                STATE["close"] += 1
            else:
                return self.reply(404, status(404, "NotFound", path))
            LOCK.notify_all()
        return self.reply(200, {})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        sock, addr = super().get_request()
        # The TLS handshake runs on the request's thread, not the accept loop.
        return self.tls.wrap_socket(sock, server_side=True,
                                    do_handshake_on_connect=False), addr


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bookmark-interval", type=float, default=1.0)
    parser.add_argument("--namespaces", default="", help="comma-separated, made at start")
    ARGS = parser.parse_args()
    with LOCK:
        for name in [n for n in ARGS.namespaces.split(",") if n]:
            obj = {"kind": "Namespace", "apiVersion": "v1",
                   "metadata": {"name": name, "uid": str(uuid.uuid4())}}
            OBJECTS[("namespaces", "", name)] = obj
            record("namespaces", "", "ADDED", obj)
    server = Server(("127.0.0.1", ARGS.port), Handler)
    server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.tls.load_cert_chain(ARGS.cert, ARGS.key)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
