#!/usr/bin/env bash
# Builds pop and runs its main job on the embedded store (no ZooKeeper needed): it initializes a namespace, adds a
# service from the built-in `command` template, starts this machine's agent, deploys the service, and shows it
# running. Everything lives in a private POP_HOME (default: .build/demo-home), so your own state is untouched.
#   scripts/demo.sh            the quick demo (a tiny web server on port 8000)
#   scripts/demo.sh plone      the seed's tutorial: Plone on port 8080 (pip installs Plone: several minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

# The release build links the Swift runtime and Foundation statically: a command loads no Swift library as it starts.
# With pop it builds each instance's log writer, a small C program the agent starts from beside its own executable.
scripts/build-release.sh
pop="$PWD/.build/release/pop"
export POP_HOME="${POP_HOME:-$PWD/.build/demo-home}"
mkdir -p "$POP_HOME" && chmod 700 "$POP_HOME"
unset POP_HOST

"$pop" stop >/dev/null 2>&1 || true
"$pop" init --force

if [ "${1:-}" = plone ]; then
    "$pop" add plone --template plone4
    "$pop" describe plone4
    "$pop" list
    "$pop" start
    "$pop" deploy plone
    "$pop" status plone --wait running --timeout 900
    python3 -c 'import urllib.request; page = urllib.request.urlopen("http://127.0.0.1:8080/").read().decode(); print("GET http://127.0.0.1:8080/ ->", "Plone is up and running" if "Plone is up and running" in page else page[:200])'
    "$pop" run plone install toml==0.10.2
    "$pop" run plone packages toml Products.CMFPlone
else
    "$pop" add hello --template command --command 'python3 -m http.server {port} --bind 127.0.0.1' --port 8000
    "$pop" start
    "$pop" deploy hello
    "$pop" status hello --wait running --timeout 30
    python3 -c 'import urllib.request; print("GET http://127.0.0.1:8000/ ->", urllib.request.urlopen("http://127.0.0.1:8000/").status)'
fi
"$pop" status
echo
echo "The agent keeps running in the background. Try: POP_HOME=$POP_HOME $pop status | logs | stop"
