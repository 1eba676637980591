#!/usr/bin/env bash
# A pop cluster on this host, by hand: a 3-member ZooKeeper ensemble on a bridge and machines that each live in their
# own network namespace (own address, machine id and POP_HOME). Needs root and iproute2. See docs/multi-machine.md.
#   scripts/cluster.sh up [MACHINES] [--agents]   start it (default 3 machines); --agents also runs `pop fg` on each
#   scripts/cluster.sh status                     what runs: namespaces, addresses, homes, POP_HOST
#   scripts/cluster.sh exec MACHINE CMD [ARG...]  run CMD on a machine (e.g. m1), with its POP_* variables;
#                                                 `pop` is the freshly built binary
#   scripts/cluster.sh pop ARG...                 run pop from the root namespace (an operator's workstation)
#   scripts/cluster.sh down                       stop everything it started and delete the namespaces and bridge
set -euo pipefail
cd "$(dirname "$0")/.."

state=/run/pop-test-clusters/by-hand.env
log=/run/pop-test-clusters/by-hand.log

need_root() {
    if [ "$(id -u)" != 0 ]; then echo "cluster.sh: network namespaces need root; run it with sudo" >&2; exit 1; fi
    command -v ip >/dev/null || { echo "cluster.sh: iproute2's ip is missing; apt-get install iproute2" >&2; exit 1; }
}

load() {
    [ -f "$state" ] || { echo "cluster.sh: no cluster is up (start one with: scripts/cluster.sh up)" >&2; exit 1; }
    # shellcheck disable=SC1090
    . "$state"
}

case "${1:-}" in
up)
    need_root
    if [ -f "$state" ]; then echo "cluster.sh: a cluster is up already; scripts/cluster.sh down first" >&2; exit 1; fi
    machines=3; agents=()
    shift
    for argument in "$@"; do
        case "$argument" in
        --agents) agents=(--agents) ;;
        *) machines="$argument" ;;
        esac
    done
    swift build --product pop >/dev/null
    swift build --product pop-bench >/dev/null
    bin="$(swift build --show-bin-path)"
    mkdir -p "$(dirname "$state")"
    POP_BINARY="$bin/pop" setsid "$bin/pop-bench" cluster up --machines "$machines" --state "$state" "${agents[@]}" \
        </dev/null >"$log" 2>&1 &
    holder=$!
    # The holder writes the state file once the ensemble answers and every namespace is up.
    for _ in $(seq 1 600); do
        [ -f "$state" ] && break
        kill -0 "$holder" 2>/dev/null || { echo "cluster.sh: the cluster did not start:" >&2; cat "$log" >&2; exit 1; }
        sleep 0.2
    done
    cat "$state"
    ;;
status)
    load
    echo "cluster $POP_CLUSTER_NAME (held by pid $POP_CLUSTER_PID), POP_HOST=$POP_HOST"
    for machine in $POP_CLUSTER_MACHINES; do
        variable="POP_MACHINE_$machine"
        read -r namespace address home <<<"${!variable}"
        echo "$machine: namespace $namespace, address $address, POP_HOME $home"
    done
    ;;
exec)
    need_root
    load
    machine="${2:?usage: scripts/cluster.sh exec MACHINE CMD [ARG...]}"
    shift 2
    variable="POP_MACHINE_$machine"
    [ -n "${!variable:-}" ] || { echo "cluster.sh: no machine '$machine'; machines: $POP_CLUSTER_MACHINES" >&2; exit 1; }
    read -r namespace _ home <<<"${!variable}"
    exec ip netns exec "$namespace" env PATH="$(dirname "$POP_BINARY"):$PATH" POP_HOME="$home" \
        POP_MACHINE_ID="$machine" POP_HOST="$POP_HOST" "$@"
    ;;
pop)
    load
    shift
    mkdir -p "$POP_CLUSTER_FOLDER/operator/home"
    exec env POP_HOME="$POP_CLUSTER_FOLDER/operator/home" POP_MACHINE_ID=operator POP_HOST="$POP_HOST" "$POP_BINARY" "$@"
    ;;
down)
    load
    kill -TERM "$POP_CLUSTER_PID" 2>/dev/null || true
    # The holder kills every process in the namespaces, deletes them and the bridge, and stops the ensemble.
    while kill -0 "$POP_CLUSTER_PID" 2>/dev/null; do sleep 0.2; done
    # When the holder had died instead, remove what it left (the next cluster started would sweep it too).
    for namespace in $(ip netns list | awk '{print $1}' | grep "^$POP_CLUSTER_NAME-" || true); do
        ip netns pids "$namespace" | xargs -r kill -KILL
        ip netns delete "$namespace"
    done
    ip link delete "$POP_CLUSTER_NAME-br" 2>/dev/null || true
    rm -f "$state"
    echo "cluster $POP_CLUSTER_NAME is down"
    ;;
*)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
