#!/usr/bin/env python3
"""Probe latency of tandem-proxy's /healthz/ready while idle and slow clients hold
connections to the same port (issue #18).

Starts the given tandem-proxy on loopback (port 0, no certificate: /healthz/ready then
answers 503, which is an answer all the same), opens --connections connections to its
health port (every other one sends "GET / HTTP/1.1\\r\\n" and nothing more, the rest
nothing), then sends --probes probes one after another and prints how many were
answered within --timeout and their latency. Bounded: every wait has a deadline.

  bench/idle_flood.py build/proxy/tandem-proxy [--connections=5000] [--probes=50]
"""
import argparse
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def start_proxy(binary, work):
    config = os.path.join(work, "proxy.json")
    with open(config, "w") as f:
        f.write('{"outbound_address": "127.0.0.1:0", "inbound_address": "127.0.0.1:0", '
                '"metrics_address": "127.0.0.1:0", "health_address": "127.0.0.1:0", '
                '"admin_address": "127.0.0.1:0", "workers": 1, "socket_mark": 0, '
                f'"sds_socket": "{work}/none.sock"}}')
    log_path = os.path.join(work, "proxy.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([binary, f"--config={config}"], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = re.search(r"listener=health address=127\.0\.0\.1:(\d+)", open(log_path).read())
        if m:
            return proc, int(m.group(1))
        time.sleep(0.05)
    proc.kill()
    sys.exit("tandem-proxy did not log its health port:\n" + open(log_path).read())


def probe(port, timeout):
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(max(timeout - (time.monotonic() - start), 0.001))
            s.sendall(b"GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        if data.startswith(b"HTTP/1.1 "):
            return time.monotonic() - start
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("proxy")
    ap.add_argument("--connections", type=int, default=5000)
    ap.add_argument("--probes", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=3.0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as work:
        proc, port = start_proxy(args.proxy, work)
        held = []
        try:
            for i in range(args.connections):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))  # may still sit in the backlog
                held.append(s)
                if i % 2:
                    try:
                        s.send(b"GET / HTTP/1.1\r\n")
                    except OSError:
                        pass
            time.sleep(0.5)  # let the server take what it will
            latencies = [probe(port, args.timeout) for _ in range(args.probes)]
        finally:
            for s in held:
                s.close()
            proc.kill()
            proc.wait()
    answered = [x for x in latencies if x is not None]
    if os.environ.get("VERBOSE"):
        print(" ".join("-" if x is None else f"{x*1000:.1f}" for x in latencies))
    ms = lambda x: f"{x * 1000:.2f} ms"
    print(f"{args.connections} idle/slow connections held; {len(answered)}/{args.probes} "
          f"probes answered within {args.timeout:g} s", end="")
    if answered:
        print(f"; median {ms(statistics.median(answered))}, max {ms(max(answered))}")
    else:
        print()


if __name__ == "__main__":
    main()
