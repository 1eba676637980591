#!/usr/bin/env bash
# What scripts/text-order.sh runs to see which functions pop runs: the commands of a session on the embedded store,
# an agent with 20 services and one with 1,000 instances (pop-bench agent), and an agent and commands on ZooKeeper.
#   workload.sh POP POP_BENCH FOLDER
set -euo pipefail
pop="$1"
bench="$2"
export POP_HOME="$3/home"
unset POP_HOST
mkdir -p "$POP_HOME" && chmod 700 "$POP_HOME"
"$pop" --version >/dev/null
"$pop" --help >/dev/null
"$pop" status --help >/dev/null
"$pop" nosuch >/dev/null 2>&1 || true
"$pop" init --force >/dev/null
for i in $(seq 20); do "$pop" add "s$i" --template command --command 'sleep 1000' >/dev/null; done
"$pop" list >/dev/null
"$pop" describe command >/dev/null
"$pop" start >/dev/null
for i in $(seq 20); do "$pop" deploy "s$i" >/dev/null; done
"$pop" status s20 --wait running --timeout 60 >/dev/null
for i in 1 2 3; do "$pop" status >/dev/null; "$pop" status --json >/dev/null; done
"$pop" machines >/dev/null
"$pop" logs s1 >/dev/null 2>&1 || true
"$pop" events >/dev/null 2>&1 || true
"$pop" config s2 >/dev/null 2>&1 || true
"$pop" history s2 >/dev/null 2>&1 || true
"$pop" restart s3 >/dev/null
"$pop" status s3 --wait running --timeout 60 >/dev/null
for i in $(seq 20); do "$pop" undeploy "s$i" >/dev/null; done
"$pop" status >/dev/null
"$pop" stop >/dev/null
export TMPDIR=/dev/shm  # short paths: the agents listen on Unix sockets under their homes
"$bench" agent --pop "$pop" --runs 0 --instances 1000 --skip-supervisor --storm 0 --log-megabytes 0 --idle-seconds 1 >/dev/null
"$bench" agent --pop "$pop" --runs 5 --latency-store zookeeper --skip-supervisor --instances 0 --storm 0 \
    --log-megabytes 0 --idle-seconds 1 >/dev/null 2>&1
"$bench" status --pop "$pop" --runs 3 --services 20 --skip-supervisor >/dev/null 2>&1
