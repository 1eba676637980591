#!/usr/bin/env bash
# Sets up what a fresh Debian machine with Swift lacks, then builds and runs pop's whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
[ -f /usr/include/sqlite3.h ] || missing+=(libsqlite3-dev)
command -v ip >/dev/null || missing+=(iproute2)
# Templates create virtual environments with the system's Python.
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3 python3-venv)
# The metrics tests scrape the agents with a real Prometheus server and check their output with promtool.
command -v promtool >/dev/null && command -v prometheus >/dev/null || missing+=(prometheus)
# The endpoint's TLS tests make a certificate with openssl.
command -v openssl >/dev/null || missing+=(openssl)
# The dashboard's tests and `pop-bench ui` drive a real browser through its DevTools protocol.
command -v chromium >/dev/null || missing+=(chromium)
# The built-in redis template runs Debian's redis-server; the relation tests count requests in it.
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# kazoo is the peer client the cross-client tests compare against; supervisor is the benchmarks' peer.
python3 -c 'import kazoo' 2>/dev/null || python3 -m pip install -q kazoo
python3 -c 'import supervisor' 2>/dev/null || python3 -m pip install -q supervisor

swift build --build-tests
swift test
