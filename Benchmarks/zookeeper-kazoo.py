#!/usr/bin/env python3
"""The kazoo side of `pop-bench zookeeper`: the same work as ZooKeeperNIO's run, printed as JSON.

Pipelined runs use kazoo's async API with a sliding window of requests in flight; latency is timed on
sequential synchronous get calls. The CPU figures are this process's own user + system time (all its threads)
during a pipelined run, divided by its operations.
"""
import argparse
import json
import os
import threading
import time

from kazoo.client import KazooClient


def cpu_seconds():
    """User + system CPU seconds this process has used."""
    times = os.times()
    return times.user + times.system


def pipelined(zk, count, concurrency, start_one):
    """Runs `count` async calls with at most `concurrency` in flight; returns the seconds and CPU seconds taken."""
    lock = threading.Lock()
    done = threading.Event()
    state = {"issued": 0, "finished": 0, "error": None}

    def on_complete(result):
        try:
            result.get_nowait()
        except Exception as error:  # noqa: BLE001 - reported below
            state["error"] = error
        with lock:
            state["finished"] += 1
            finished = state["finished"] >= count
            issue = state["issued"] < count and not finished
            if issue:
                state["issued"] += 1
        if finished:
            done.set()
        elif issue:
            start_one().rawlink(on_complete)

    began = time.perf_counter()
    began_cpu = cpu_seconds()
    with lock:
        first = min(concurrency, count)
        state["issued"] = first
    for _ in range(first):
        start_one().rawlink(on_complete)
    done.wait()
    if state["error"] is not None:
        raise state["error"]
    return time.perf_counter() - began, cpu_seconds() - began_cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--operations", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--payload-size", type=int, default=100)
    args = parser.parse_args()

    zk = KazooClient(hosts=args.hosts)
    zk.start(timeout=15)
    path = "/bench-kazoo"
    payload = b"a" * args.payload_size
    if zk.exists(path) is None:
        zk.create(path, payload)

    pipelined(zk, min(20_000, args.operations), args.concurrency, lambda: zk.get_async(path))
    get_seconds, get_cpu = pipelined(zk, args.operations, args.concurrency, lambda: zk.get_async(path))
    set_seconds, set_cpu = pipelined(zk, args.operations, args.concurrency, lambda: zk.set_async(path, payload))

    latencies = []
    for _ in range(args.samples):
        began = time.perf_counter_ns()
        zk.get(path)
        latencies.append((time.perf_counter_ns() - began) / 1000)
    latencies.sort()
    zk.stop()
    zk.close()
    print(json.dumps({
        "get_throughput": args.operations / get_seconds,
        "set_throughput": args.operations / set_seconds,
        "get_cpu_us_per_op": get_cpu * 1e6 / args.operations,
        "set_cpu_us_per_op": set_cpu * 1e6 / args.operations,
        "p50_us": latencies[len(latencies) // 2],
        "p99_us": latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)],
    }))


if __name__ == "__main__":
    main()
