#!/usr/bin/env python3
"""Sorts a tandem-proxy perf profile's samples into categories, for bench/handshake.sh.

  perf script -i FILE -F ip,sym,dso,period | bench/perf_categories.py
  bench/perf_categories.py LABEL:US:SCRIPT_FILE...   (a Markdown table, a column each;
      US, the side's CPU µs per connection, adds each category's share in µs)

Each sample goes to the first category that claims a frame of its call chain, leaf
first (certificate chain verification as a whole first), so work inside BoringSSL's certificate parsing counts as parsing even when the
leaf is malloc. Kernel samples are split by the system call they ran under. Needs call
chains (perf record -g, or --call-graph dwarf for user-space frames).
"""
import re
import sys
from collections import Counter

# (category, pattern on a frame's symbol), tried in this order for each frame.
FRAME_RULES = [
    ("logging, formatting", re.compile(
        r"tandem::log::|absl::.*(StrCat|Format|str_format)")),
    ("metrics", re.compile(r"tandem::proxy::(PeerLabelTable|PeerMetrics|ProxyStats|"
                           r"WorkerStats|PeerCell)|tandem::metrics::|Histogram")),
    ("policy lookup", re.compile(r"tandem::proxy::MeshPolicy|IdentityAllowed|"
                                 r"FindRevocation|InboundPolicy|IsMeshed")),
    ("verification: tandem (SPIFFE, chain copy, serial)", re.compile(
        r"tandem::pki::|tandem::SpiffeId|PeerChain|VerifyPeer|PeerOf")),
    ("crypto: public key (ECDSA, ECDH/X25519)", re.compile(
        r"ecp_nistz|ec_|EC_|ECDSA|ecdsa|fiat_|x25519|X25519|fe_|ge_|beeu|bn_|BN_|"
        r"p256|cmov|x25519|ECDH|table_select|ec_GFp")),
    ("crypto: hashes, AEAD, KDF, RNG", re.compile(
        r"sha256|sha512|SHA256|SHA384|SHA512|aes_|AES|gcm|GCM|hkdf|HKDF|HMAC|hmac|"
        r"CRYPTO_ctr|ctr_drbg|CTR_DRBG|RAND_|rand_|getrandom|chacha|poly1305|"
        r"EVP_Digest|EVP_AEAD")),
    ("X.509/ASN.1 parsing and freeing (BoringSSL's and tandem's)", re.compile(
        r"asn1|ASN1|x509|X509|v3_|OBJ_|crypto_buffer|CRYPTO_BUFFER|d2i|i2d")),
]
SYSCALL = re.compile(r"^(__x64_sys_|__se_sys_|__do_sys_|__sys_|do_sys_)(\w+)")
ALLOC = re.compile(r"malloc|free|_int_|OPENSSL_(malloc|zalloc|free|realloc)|"
                   r"operator new|operator delete|tcache|consolidate|calloc|realloc")
FRAME = re.compile(r"^\s*[0-9a-f]+ (.*) \((.*)\)$")


# Whole subtrees, whatever their leaf: (category, pattern on any frame of the chain).
SUBTREE_RULES = [
    ("peer chain verification (X509_verify_cert, its CA signature check included)",
     re.compile(r"^X509_verify_cert$")),
]


def classify(frames):
    """frames: [(symbol, dso)], leaf first."""
    for name, rule in SUBTREE_RULES:
        if any(rule.search(sym) for sym, _ in frames):
            return name
    if frames and frames[0][1] == "[kernel.kallsyms]":
        name = None
        in_syscall = False
        for sym, dso in frames:
            if dso != "[kernel.kallsyms]":
                # Caught in the system call's entry or exit: the libc wrapper names it.
                if in_syscall:
                    name = re.sub(r"^(__GI_)?_*(libc_)?", "", sym)
                break
            in_syscall = in_syscall or sym.startswith("entry_SYSCALL")
            m = SYSCALL.match(sym)
            if m:
                name = m.group(2)
                break
        if name is None:
            return "kernel: interrupts, softirq, scheduler (no system call)"
        name = {"readv": "read", "sendto": "send", "sendmsg": "send", "recv": "read",
                "recvfrom": "read", "accept": "accept4", "close_range": "close",
                "epoll_pwait": "epoll_wait"}.get(name, name)
        return "kernel: " + name
    for sym, _ in frames:
        for name, rule in FRAME_RULES:
            if rule.search(sym):
                return name
    leaf = frames[0][0] if frames else "?"
    if ALLOC.search(leaf):
        return "allocation (malloc/free) elsewhere"
    if re.search(r"bssl::|SSL_|ssl_|tls1|tls13", " ".join(s for s, _ in frames[:12])):
        return "TLS state machine, record layer (BoringSSL)"
    if re.search(r"mem(cpy|move|set|cmp)", leaf):
        return "memcpy/memset elsewhere"
    if re.search(r"GetCurrentTimeNanos|absl::.*Now$|clock_gettime", leaf):
        return "clock reads (absl::Now)"
    if re.search(r"Mutex::(Lock|Unlock)|pthread_mutex", leaf):
        return "locks"
    if re.search(r"^(epoll_wait|__GI___pthread_(en|dis)able_asynccancel)", leaf):
        return "kernel: epoll_wait"  # its libc wrapper
    if "tandem::" in leaf:
        return "tandem: event loop, connection, BIO"
    return "other"


def read_samples(stream):
    """Returns ({category: period}, total period) of `perf script` output."""
    counts = Counter()
    frames, period = [], 0
    for line in list(stream) + [""]:
        if not line.strip():
            if frames or period:
                counts[classify(frames)] += period
            frames, period = [], 0
            continue
        m = FRAME.match(line)
        if m:
            frames.append((m.group(1), m.group(2)))
        elif line.strip().isdigit():
            period = int(line.strip())
    return counts, sum(counts.values())


def main():
    if len(sys.argv) == 1:
        counts, total = read_samples(sys.stdin)
        if total == 0:
            print("no samples")
            return
        kernel = sum(v for k, v in counts.items() if k.startswith("kernel"))
        for name, value in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(f"{100.0 * value / total:6.1f}%  {name}")
        print(f"{100.0 * kernel / total:6.1f}%  (all kernel)")
        return
    # LABEL:US:FILE ...: a Markdown table, a column per profile (`perf script` output in
    # FILE); with US, the side's measured CPU µs per connection, each share in µs too.
    columns = []
    for arg in sys.argv[1:]:
        label, us, path = arg.split(":", 2)
        with open(path) as f:
            counts, total = read_samples(f)
        columns.append((label, float(us) if us else None, counts, total))
    names = Counter()
    for _, _, counts, total in columns:
        for name, value in counts.items():
            names[name] += value / max(total, 1)
    kernel_rows = [n for n in names if n.startswith("kernel")]
    rows = sorted(names, key=lambda n: -names[n]) + ["(all kernel)"]

    def cell(col, name):
        _, us, counts, total = col
        value = (sum(counts[k] for k in kernel_rows) if name == "(all kernel)"
                 else counts.get(name, 0))
        share = value / max(total, 1)
        return f"{100 * share:.1f}%" + (f" ({share * us:.0f})" if us else "")

    print("| category | " + " | ".join(c[0] for c in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name in rows:
        print(f"| {name} | " + " | ".join(cell(c, name) for c in columns) + " |")


if __name__ == "__main__":
    main()
