#!/usr/bin/env bash
# The capture script in a throwaway network namespace: idempotent, complete clean-up,
# both iptables backends. Exit 77 (skipped) when not root.
set -uo pipefail
SCRIPT="$(cd "$(dirname "$0")/../.." && pwd)/deploy/iptables/tandem-iptables.sh"
if [[ $(id -u) -ne 0 ]] || ! ip netns add "tandem-ipt-$$" 2>/dev/null; then
  echo "SKIP: needs root and network namespaces"
  exit 77
fi
NS="tandem-ipt-$$"
trap 'ip netns del "$NS" 2>/dev/null' EXIT
failures=0
check() {
  local what="$1"; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
tested=0
for backend in nft legacy; do
  if ! ip netns exec "$NS" "iptables-$backend" -t nat -S >/dev/null 2>&1; then
    echo "skip: iptables-$backend is not usable here"
    continue
  fi
  tested=$((tested + 1))
  save() { ip netns exec "$NS" "iptables-$backend-save" -t nat 2>/dev/null | grep TANDEM | sort; }
  save6() { ip netns exec "$NS" "ip6tables-$backend-save" -t nat 2>/dev/null | grep TANDEM | sort; }
  out="$(ip netns exec "$NS" "$SCRIPT" --backend "$backend" --exclude-outbound-ports 22 \
        --exclude-outbound-cidrs 10.9.0.0/16,fd00::/8 2>&1)"
  check "$backend: says which backend it used" grep -q "using iptables-$backend" <<<"$out"
  first="$(save)"
  check "$backend: installs the capture chains" grep -q -- '-A TANDEM_REDIRECT -p tcp -j REDIRECT --to-ports 15001' <<<"$first"
  check "$backend: exempts the proxy uid" grep -q -- '--uid-owner 1337 -j RETURN' <<<"$first"
  check "$backend: excludes the configured port" grep -q -- '--dport 22 -j RETURN' <<<"$first"
  check "$backend: v6 CIDRs stay out of the v4 table" bash -c "! grep -q fd00 <<<\"\$0\"" "$first"
  if [[ -e /proc/net/if_inet6 ]] && ip netns exec "$NS" "ip6tables-$backend" -t nat -S >/dev/null 2>&1; then
    first6="$(save6)"
    check "$backend: IPv6 outbound goes to 15001" grep -q -- '-A TANDEM_REDIRECT -p tcp -j REDIRECT --to-ports 15001' <<<"$first6"
    check "$backend: IPv6 inbound goes to 15006" grep -q -- '-A TANDEM_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006' <<<"$first6"
    check "$backend: IPv6 exempts the proxy uid" grep -q -- '--uid-owner 1337 -j RETURN' <<<"$first6"
    check "$backend: IPv6 loopback is not captured" grep -q -- '-d ::1/128 -j RETURN' <<<"$first6"
    check "$backend: v6 CIDRs are excluded in the v6 table" grep -q -- '-d fd00::/8 -j RETURN' <<<"$first6"
    check "$backend: v4 CIDRs stay out of the v6 table" bash -c "! grep -q 10.9.0.0 <<<\"\$0\"" "$first6"
  fi
  ip netns exec "$NS" "$SCRIPT" --backend "$backend" --exclude-outbound-ports 22 \
    --exclude-outbound-cidrs 10.9.0.0/16,fd00::/8 >/dev/null 2>&1
  check "$backend: a second run changes nothing (idempotent)" test "$first" == "$(save)"
  check "$backend: hooks are installed once" test "$(grep -c -- '-A OUTPUT -p tcp -j TANDEM_OUTPUT' <<<"$(save)")" -eq 1
  ip netns exec "$NS" "$SCRIPT" --backend "$backend" --clean >/dev/null 2>&1
  check "$backend: clean-up removes every IPv4 rule" test -z "$(save)"
  check "$backend: clean-up removes every IPv6 rule" test -z "$(save6)"
done
check "bad flags are refused" bash -c "! ip netns exec $NS $SCRIPT --outbound-port 99999 2>/dev/null"
check "at least one backend was tested" test "$tested" -ge 1
((failures)) && { echo "$failures checks failed"; exit 1; }
echo "all iptables checks passed"
