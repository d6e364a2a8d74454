#!/usr/bin/env bash
# tandem-iptables.sh — the pod's traffic capture, as a mesh init container runs it.
#
# Sends the pod's outbound TCP to the proxy's outbound listener (15001) and inbound TCP
# to its inbound listener (15006), except the proxy's own traffic (uid/gid 1337, or
# packets with SO_MARK 1337), loopback, and whatever is excluded. IPv4 and IPv6.
# Idempotent: running it again yields the same rules. `--clean` removes everything it
# made. Works with iptables-nft and iptables-legacy, and says which it used.
#
# Flags (env var in brackets; flags win):
#   --outbound-port N        [TANDEM_OUTBOUND_PORT=15001]
#   --inbound-port N         [TANDEM_INBOUND_PORT=15006]
#   --proxy-uid N            [TANDEM_PROXY_UID=1337]   traffic of this uid is never captured
#   --proxy-gid N            [TANDEM_PROXY_GID=1337]
#   --mark N                 [TANDEM_MARK=1337]        nor packets carrying this mark
#   --include-outbound-cidrs LIST  [TANDEM_INCLUDE_OUTBOUND_CIDRS=*]  "*" = all
#   --exclude-outbound-cidrs LIST  [TANDEM_EXCLUDE_OUTBOUND_CIDRS=]
#   --exclude-outbound-ports LIST  [TANDEM_EXCLUDE_OUTBOUND_PORTS=]
#   --include-inbound-ports LIST   [TANDEM_INCLUDE_INBOUND_PORTS=*]   "*" = all
#   --exclude-inbound-ports LIST   [TANDEM_EXCLUDE_INBOUND_PORTS=15000,15001,15006,15019,15020,15021,15090]
#   --backend auto|nft|legacy      [TANDEM_IPTABLES_BACKEND=auto]
#   --ipv6 auto|on|off             [TANDEM_IPV6=auto]
#   --clean                        remove every rule and chain this script made
#   --dry-run                      print the commands instead of running them
# LISTs are comma-separated. CIDRs of the other family are skipped per family.
set -euo pipefail

OUTBOUND_PORT="${TANDEM_OUTBOUND_PORT:-15001}"
INBOUND_PORT="${TANDEM_INBOUND_PORT:-15006}"
PROXY_UID="${TANDEM_PROXY_UID:-1337}"
PROXY_GID="${TANDEM_PROXY_GID:-1337}"
MARK="${TANDEM_MARK:-1337}"
INCLUDE_OUT_CIDRS="${TANDEM_INCLUDE_OUTBOUND_CIDRS:-*}"
EXCLUDE_OUT_CIDRS="${TANDEM_EXCLUDE_OUTBOUND_CIDRS:-}"
EXCLUDE_OUT_PORTS="${TANDEM_EXCLUDE_OUTBOUND_PORTS:-}"
INCLUDE_IN_PORTS="${TANDEM_INCLUDE_INBOUND_PORTS:-*}"
EXCLUDE_IN_PORTS="${TANDEM_EXCLUDE_INBOUND_PORTS:-15000,15001,15006,15019,15020,15021,15090}"
BACKEND="${TANDEM_IPTABLES_BACKEND:-auto}"
IPV6="${TANDEM_IPV6:-auto}"
CLEAN=0
DRY_RUN=0

die() { echo "tandem-iptables: $*" >&2; exit 2; }

while (($#)); do
  case "$1" in
    --outbound-port) OUTBOUND_PORT="$2"; shift ;;
    --inbound-port) INBOUND_PORT="$2"; shift ;;
    --proxy-uid) PROXY_UID="$2"; shift ;;
    --proxy-gid) PROXY_GID="$2"; shift ;;
    --mark) MARK="$2"; shift ;;
    --include-outbound-cidrs) INCLUDE_OUT_CIDRS="$2"; shift ;;
    --exclude-outbound-cidrs) EXCLUDE_OUT_CIDRS="$2"; shift ;;
    --exclude-outbound-ports) EXCLUDE_OUT_PORTS="$2"; shift ;;
    --include-inbound-ports) INCLUDE_IN_PORTS="$2"; shift ;;
    --exclude-inbound-ports) EXCLUDE_IN_PORTS="$2"; shift ;;
    --backend) BACKEND="$2"; shift ;;
    --ipv6) IPV6="$2"; shift ;;
    --clean) CLEAN=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die "unknown flag $1 (see --help)" ;;
  esac
  shift
done

is_port() { [[ "$1" =~ ^[0-9]+$ ]] && (( $1 >= 1 && $1 <= 65535 )); }
is_id() { [[ "$1" =~ ^[0-9]+$ ]]; }
for p in "$OUTBOUND_PORT" "$INBOUND_PORT"; do is_port "$p" || die "bad port: $p"; done
for i in "$PROXY_UID" "$PROXY_GID" "$MARK"; do is_id "$i" || die "bad uid/gid/mark: $i"; done
split() { tr ',' '\n' <<<"$1" | sed '/^$/d'; }
for p in $(split "$EXCLUDE_OUT_PORTS") $(split "$EXCLUDE_IN_PORTS"); do
  is_port "$p" || die "bad port in a port list: $p"
done
if [[ "$INCLUDE_IN_PORTS" != "*" ]]; then
  for p in $(split "$INCLUDE_IN_PORTS"); do is_port "$p" || die "bad inbound port: $p"; done
fi
is_cidr() { [[ "$1" =~ ^[0-9a-fA-F.:]+(/[0-9]{1,3})?$ ]]; }
for c in $(split "$EXCLUDE_OUT_CIDRS"); do is_cidr "$c" || die "bad CIDR: $c"; done
if [[ "$INCLUDE_OUT_CIDRS" != "*" ]]; then
  for c in $(split "$INCLUDE_OUT_CIDRS"); do is_cidr "$c" || die "bad CIDR: $c"; done
fi
family_of() { [[ "$1" == *:* ]] && echo 6 || echo 4; }

# Choose the backend: the one that already holds our rules, else nft, else legacy.
has_rules() { "$1-save" -t nat 2>/dev/null | grep -q TANDEM_; }
usable() { command -v "$1" >/dev/null && "$1" -t nat -S >/dev/null 2>&1; }
case "$BACKEND" in
  auto)
    if usable iptables-nft && has_rules iptables-nft; then BACKEND=nft
    elif usable iptables-legacy && has_rules iptables-legacy; then BACKEND=legacy
    elif usable iptables-nft; then BACKEND=nft
    elif usable iptables-legacy; then BACKEND=legacy
    else die "neither iptables-nft nor iptables-legacy works here (root? NET_ADMIN?)"
    fi ;;
  nft|legacy) usable "iptables-$BACKEND" || die "iptables-$BACKEND is not usable here" ;;
  *) die "--backend must be auto, nft or legacy" ;;
esac
V4="iptables-$BACKEND"
V6="ip6tables-$BACKEND"
families=(4)
case "$IPV6" in
  on) usable "$V6" || die "$V6 is not usable"; families+=(6) ;;
  auto) if usable "$V6" && [[ -e /proc/net/if_inet6 ]]; then families+=(6); fi ;;
  off) ;;
  *) die "--ipv6 must be auto, on or off" ;;
esac
fams="IPv4"; [[ ${#families[@]} -gt 1 ]] && fams="IPv4+IPv6"
echo "tandem-iptables: using iptables-$BACKEND ($fams)" >&2

run() {
  if ((DRY_RUN)); then echo "$*"; else "$@"; fi
}

clean_family() {
  local ipt="$1"
  # Remove our jumps (as often as they appear), then our chains.
  for hook in PREROUTING OUTPUT; do
    local chain=TANDEM_INBOUND
    [[ $hook == OUTPUT ]] && chain=TANDEM_OUTPUT
    while "$ipt" -t nat -C "$hook" -p tcp -j "$chain" 2>/dev/null; do
      run "$ipt" -t nat -D "$hook" -p tcp -j "$chain"
      ((DRY_RUN)) && break
    done
  done
  for chain in TANDEM_INBOUND TANDEM_IN_REDIRECT TANDEM_OUTPUT TANDEM_REDIRECT; do
    if "$ipt" -t nat -S "$chain" >/dev/null 2>&1; then
      run "$ipt" -t nat -F "$chain"
      run "$ipt" -t nat -X "$chain"
    fi
  done
}

apply_family() {
  local ipt="$1" fam="$2" loopback="127.0.0.1/32"
  [[ $fam == 6 ]] && loopback="::1/128"
  for chain in TANDEM_INBOUND TANDEM_IN_REDIRECT TANDEM_OUTPUT TANDEM_REDIRECT; do
    "$ipt" -t nat -S "$chain" >/dev/null 2>&1 || run "$ipt" -t nat -N "$chain"
    run "$ipt" -t nat -F "$chain"
  done
  run "$ipt" -t nat -A TANDEM_REDIRECT -p tcp -j REDIRECT --to-ports "$OUTBOUND_PORT"
  run "$ipt" -t nat -A TANDEM_IN_REDIRECT -p tcp -j REDIRECT --to-ports "$INBOUND_PORT"

  # Inbound: everything arriving over TCP, but the proxy's own ports and exclusions.
  for p in $(split "$EXCLUDE_IN_PORTS"); do
    run "$ipt" -t nat -A TANDEM_INBOUND -p tcp --dport "$p" -j RETURN
  done
  if [[ "$INCLUDE_IN_PORTS" == "*" ]]; then
    run "$ipt" -t nat -A TANDEM_INBOUND -p tcp -j TANDEM_IN_REDIRECT
  else
    for p in $(split "$INCLUDE_IN_PORTS"); do
      run "$ipt" -t nat -A TANDEM_INBOUND -p tcp --dport "$p" -j TANDEM_IN_REDIRECT
    done
  fi

  # Outbound: never the proxy's own traffic (or it would loop), never loopback.
  run "$ipt" -t nat -A TANDEM_OUTPUT -m owner --uid-owner "$PROXY_UID" -j RETURN
  run "$ipt" -t nat -A TANDEM_OUTPUT -m owner --gid-owner "$PROXY_GID" -j RETURN
  run "$ipt" -t nat -A TANDEM_OUTPUT -m mark --mark "$MARK" -j RETURN
  run "$ipt" -t nat -A TANDEM_OUTPUT -o lo -j RETURN
  run "$ipt" -t nat -A TANDEM_OUTPUT -d "$loopback" -j RETURN
  for p in $(split "$EXCLUDE_OUT_PORTS"); do
    run "$ipt" -t nat -A TANDEM_OUTPUT -p tcp --dport "$p" -j RETURN
  done
  for c in $(split "$EXCLUDE_OUT_CIDRS"); do
    [[ $(family_of "$c") == "$fam" ]] && run "$ipt" -t nat -A TANDEM_OUTPUT -d "$c" -j RETURN
  done
  if [[ "$INCLUDE_OUT_CIDRS" == "*" ]]; then
    run "$ipt" -t nat -A TANDEM_OUTPUT -p tcp -j TANDEM_REDIRECT
  else
    for c in $(split "$INCLUDE_OUT_CIDRS"); do
      [[ $(family_of "$c") == "$fam" ]] &&
        run "$ipt" -t nat -A TANDEM_OUTPUT -p tcp -d "$c" -j TANDEM_REDIRECT
    done
  fi

  # Hook our chains in once.
  "$ipt" -t nat -C PREROUTING -p tcp -j TANDEM_INBOUND 2>/dev/null ||
    run "$ipt" -t nat -A PREROUTING -p tcp -j TANDEM_INBOUND
  "$ipt" -t nat -C OUTPUT -p tcp -j TANDEM_OUTPUT 2>/dev/null ||
    run "$ipt" -t nat -A OUTPUT -p tcp -j TANDEM_OUTPUT
}

for fam in "${families[@]}"; do
  ipt="$V4"
  [[ $fam == 6 ]] && ipt="$V6"
  if ((CLEAN)); then clean_family "$ipt"; else apply_family "$ipt" "$fam"; fi
done
if ((CLEAN)); then
  echo "tandem-iptables: removed tandem rules (iptables-$BACKEND)" >&2
else
  echo "tandem-iptables: outbound TCP -> :$OUTBOUND_PORT, inbound TCP -> :$INBOUND_PORT, uid $PROXY_UID exempt" >&2
fi
