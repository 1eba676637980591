#!/usr/bin/env bash
# Writes Linker/pop.order, the order in which the release link lays out the functions pop runs (Package.swift), so
# that they lie together and a process maps few pages of the program's code (docs/benchmarks.md, "The functions
# that run, laid out together"). Run it again when much of the code has changed: a function missing from the file
# is only placed among the rest.
#   scripts/text-order.sh [ROUNDS] [--keep]    (default 12; needs perf, a C compiler, ZooKeeper and root for perf -a)
#   --keep starts from the list as it is instead of an empty one: a few rounds then add what changed.
#
# Each round links pop with the order so far and runs scripts/text-order/workload.sh under `perf record` of every
# page fault, with scripts/text-order/no-fault-around.c preloaded into pop: each page of code pop touches then
# faults on its own, and the function at each faulting instruction is added to the order. A function run only on a
# page that another one touched first is seen in a later round, once the ones before it have moved away.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-12}"
keep="${2:-}"
for tool in perf cc python3; do
    command -v "$tool" >/dev/null || { echo "text-order.sh needs $tool" >&2; exit 1; }
done
# On tmpfs the program's pages are shared memory, which userfaultfd's write-protect mode takes.
work="$(mktemp -d /dev/shm/pto.XXXXXX)"
# The list is rebuilt in place (the link reads it from there); a run that fails puts the previous one back.
cp Linker/pop.order "$work/previous.order"
finished=false
cleanup() {
    POP_HOME="$work/home" "$work/pop" stop >/dev/null 2>&1 || true
    if [ "$finished" != true ]; then
        cp "$work/previous.order" Linker/pop.order
        echo "text-order.sh failed: Linker/pop.order is left as it was" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -shared -fPIC -o "$work/no-fault-around.so" scripts/text-order/no-fault-around.c
scripts/build-release.sh --product pop-log
scripts/build-release.sh --product pop-bench
bin="$(swift build -c release --show-bin-path)"
link() {
    rm -f "$bin/pop"
    scripts/build-release.sh --product pop "$@" >/dev/null
}
[ "$keep" = --keep ] || : > Linker/pop.order
for round in $(seq "$rounds"); do
    link
    cp "$bin/pop" "$bin/pop-log" "$work/"
    POP_TEXT_ORDER_EXE="$work/pop" LD_PRELOAD="$work/no-fault-around.so" \
        perf record -q -a -e exceptions:page_fault_user -o "$work/faults.data" -- \
        scripts/text-order/workload.sh "$work/pop" "$bin/pop-bench" "$work" >/dev/null
    added="$(scripts/text-order/functions.py faults "$work/faults.data" "$work/pop" Linker/pop.order)"
    echo "round $round: $added"
    rm -rf "$work/faults.data" "$work/home"
    case "$added" in "0 new"*) break ;; esac
done
link -Xlinker -Map="$work/pop.map"
scripts/text-order/functions.py filter Linker/pop.order "$work/pop.map" 16384
link
finished=true
