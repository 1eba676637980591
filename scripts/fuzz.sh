#!/bin/sh
# Fuzzes ZooKeeperNIO's frame and record decoders with libFuzzer (see docs/security.md).
#
#   scripts/fuzz.sh                 10 million inputs into .build/fuzz/corpus
#   RUNS=1000 scripts/fuzz.sh       fewer
#   scripts/fuzz.sh -max_total_time=600 ...   extra libFuzzer flags are passed on
#
# A crash leaves its input in crash-<sha1>; replay it in a normal build with
#   swift run ZooKeeperFuzz crash-<sha1>
set -eu
cd "$(dirname "$0")/.."
RUNS="${RUNS:-10000000}"
# A separate scratch path keeps the instrumented build apart from the normal one.
swift build -c release --scratch-path .build/fuzz --product ZooKeeperFuzz \
    -Xswiftc -sanitize=fuzzer -Xswiftc -DZOOKEEPER_FUZZ
mkdir -p .build/fuzz/corpus
exec .build/fuzz/release/ZooKeeperFuzz -runs="$RUNS" -max_len=4096 -print_final_stats=1 "$@" .build/fuzz/corpus
