# podman-lib.sh — sourced by the e2e tests that run tandem's images in podman pods.
#
#   source podman-lib.sh
#   pl_init || exit $?        # 77 (skip) unless root with podman; creates the network
#   pl_play pod.yaml          # podman kube play on that network, retried only on a flake
#   pl_pod_ip POD; pl_exec_netns POD CMD...; pl_wait_state CTR STATE SECONDS;
#   pl_wait_log CTR ERE SECONDS; pl_exit_code CTR; pl_logs; $PL_WORK: a temporary directory for the test's files
#
# Everything made here is removed on exit (pl_init sets an EXIT trap running
# pl_cleanup): the pods played, any container left on the network, and the network.
# The network is tandem-e2e-<pid> on PL_SUBNET (default 10.89.77.0/24, ours alone);
# networks of earlier runs whose process is gone are removed first. Such tests take
# turns machine-wide (a lock in /run/lock), since worktrees share podman.
# podman 4.3 applies a pod's restartPolicy to its init containers: with the default
# (Always) it restarts an init container that exited 0 in a loop, kube play waits out
# its 20-s conmon timeout, then tries to remove the container and fails with "failed to
# remove once init container ... running" when it catches a restart. So pl_play refuses
# a pod with initContainers unless its restartPolicy is OnFailure or Never (measured:
# play then takes 3 s instead of 22 s). That exact failure is still retried, at most 3
# times; only a runtime start is retried, never an assertion.

PL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CONTAINERS_CONF="$PL_ROOT/deploy/podman/containers.conf"
PL_SUBNET="${PL_SUBNET:-10.89.77.0/24}"
PL_NET="tandem-e2e-$$"
PL_PLAYED=()  # YAML files played, for kube down
PL_WORK=""    # a temporary directory for the test's files, removed with the rest

pl_log() { printf '== [%d s] %s\n' "$SECONDS" "$*" >&2; }

# Removes the pods of every YAML played, whatever is left on the network, the network.
pl_cleanup() {
  local f pods
  for f in "${PL_PLAYED[@]}"; do podman kube down "$f" >/dev/null 2>&1; done
  pods="$(podman ps -a --filter "network=$PL_NET" --format '{{.Pod}}' 2>/dev/null | sort -u)"
  for p in $pods; do podman pod rm -f -t 0 "$p" >/dev/null 2>&1; done
  podman ps -aq --filter "network=$PL_NET" 2>/dev/null | xargs -r podman rm -f -t 0 >/dev/null 2>&1
  podman network rm -f "$PL_NET" >/dev/null 2>&1
  [[ -n "$PL_WORK" ]] && rm -rf "$PL_WORK"
  return 0
}

# Removes tandem-e2e-<pid> networks (and their pods) left by runs that no longer exist.
pl_remove_stale() {
  local net pid
  for net in $(podman network ls --format '{{.Name}}' | grep '^tandem-e2e-[0-9]*$'); do
    pid="${net#tandem-e2e-}"
    kill -0 "$pid" 2>/dev/null && continue
    pl_log "removing $net, left by a run that is gone"
    podman ps -a --filter "network=$net" --format '{{.Pod}}' | sort -u |
      xargs -r podman pod rm -f -t 0 >/dev/null 2>&1
    podman network rm -f "$net" >/dev/null 2>&1
  done
}

# Returns 77 (skip) unless root with a working podman; creates the network.
pl_init() {
  if [[ $(id -u) -ne 0 ]] || ! command -v podman >/dev/null; then
    echo "SKIP: needs root and podman"
    return 77
  fi
  if ! podman info >/dev/null 2>&1; then
    echo "SKIP: podman does not work here:"; podman info 2>&1 | tail -3
    return 77
  fi
  # Tests of other worktrees on this machine share podman, the subnet and the pod
  # names: one test at a time (ctest's RUN_SERIAL covers only its own tree).
  exec {PL_LOCK}>/run/lock/tandem-podman-e2e.lock
  if ! flock -w 480 "$PL_LOCK"; then
    echo "another podman e2e test on this machine held the lock for 480 s"
    return 1
  fi
  PL_WORK="$(mktemp -d)"
  trap pl_cleanup EXIT
  trap 'exit 130' INT TERM  # through the EXIT trap
  pl_remove_stale
  podman network create --subnet "$PL_SUBNET" "$PL_NET" >/dev/null || return 1
}

# pl_play FILE [kube play flags...]: plays FILE on the network. Retries only podman's
# init-container removal flake; any other failure returns 1 with play's output.
pl_play() {
  local file="$1" out attempt; shift
  if grep -q '^ *initContainers:' "$file" &&
     ! grep -Eq '^ *restartPolicy: *(OnFailure|Never) *$' "$file"; then
    echo "pl_play: $file has initContainers without restartPolicy OnFailure or Never;" \
      "podman 4.3 applies the pod's restartPolicy to init containers and would restart" \
      "them in a loop"
    return 1
  fi
  PL_PLAYED+=("$file")
  for attempt in 1 2 3; do
    if out="$(podman kube play --network "$PL_NET" "$@" "$file" 2>&1)"; then
      return 0
    fi
    if ! grep -q 'failed to remove once init container' <<<"$out"; then
      echo "podman kube play $file failed:"; echo "$out"
      return 1
    fi
    pl_log "kube play hit podman's init container removal flake (try $attempt of 3)"
    podman kube down "$file" >/dev/null 2>&1
  done
  echo "podman kube play $file failed 3 times:"; echo "$out"
  return 1
}

# pl_pod_ip POD: the pod's address on the network.
pl_pod_ip() {
  local infra
  infra="$(podman pod inspect --format '{{.InfraContainerID}}' "$1")" || return 1
  podman inspect --format "{{(index .NetworkSettings.Networks \"$PL_NET\").IPAddress}}" "$infra"
}

# pl_netns_pid POD: a process in the pod's network namespace (its infra container's).
pl_netns_pid() {
  local infra
  infra="$(podman pod inspect --format '{{.InfraContainerID}}' "$1")" || return 1
  podman inspect --format '{{.State.Pid}}' "$infra"
}

# pl_exec_netns POD CMD...: runs a host command in the pod's network namespace.
pl_exec_netns() {
  local pod="$1" pid; shift
  pid="$(pl_netns_pid "$pod")" || return 1
  nsenter --target "$pid" --net -- "$@"
}

# pl_wait_state CONTAINER STATE SECONDS: waits (bounded) for the container's state.
pl_wait_state() {
  local ctr="$1" want="$2" deadline=$((SECONDS + $3)) state
  while ((SECONDS < deadline)); do
    state="$(podman inspect --format '{{.State.Status}}' "$ctr" 2>/dev/null)"
    [[ "$state" == "$want" ]] && return 0
    sleep 0.2
  done
  echo "container $ctr is '${state:-gone}', not '$want', after $3 s"
  return 1
}

# pl_wait_log CONTAINER ERE SECONDS: waits (bounded) for a line of the container's log.
pl_wait_log() {
  local ctr="$1" pattern="$2" deadline=$((SECONDS + $3))
  until podman logs "$ctr" 2>&1 | grep -Eq -- "$pattern"; do
    if ((SECONDS >= deadline)); then
      echo "container $ctr logged no line matching '$pattern' in $3 s"
      return 1
    fi
    sleep 0.2
  done
}

# pl_exit_code CONTAINER: the exit code of a container that has exited.
pl_exit_code() { podman inspect --format '{{.State.ExitCode}}' "$1"; }

# Prints the state and log of every container in the pods on the network (for a
# failing test).
pl_logs() {
  local pod ctr
  for pod in $(podman ps -a --filter "network=$PL_NET" --format '{{.Pod}}' | sort -u); do
    for ctr in $(podman ps -a --filter "pod=$pod" --format '{{.Names}}'); do
      echo "---- $ctr ($(podman inspect --format '{{.State.Status}} exit={{.State.ExitCode}}' "$ctr"))"
      podman logs "$ctr" 2>&1 | tail -50
    done
  done
}
