#!/usr/bin/env bash
# Builds pop's release products as they ship: the Swift runtime and Foundation linked in (--static-swift-stdlib), and
# every module, the dependencies' included, compiled with a section per function, so that the release link can lay
# out the functions pop runs together (Linker/pop.order, docs/benchmarks.md). A package's own settings reach only its
# own targets, hence the flags here.
#   scripts/build-release.sh                       pop and pop-log
#   scripts/build-release.sh --product pop-bench   any other product, or other `swift build` options
# Every release build of this folder should come through here: a build with other flags compiles everything again.
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(-c release --static-swift-stdlib
    -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections)
if [ $# -eq 0 ]; then
    swift build "${flags[@]}" --product pop
    swift build "${flags[@]}" --product pop-log
else
    swift build "${flags[@]}" "$@"
fi
