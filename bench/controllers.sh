#!/usr/bin/env bash
# Endpoint controller benchmarks: builds svcnet once, then runs bench/cmd/ctrlbench against it, which
# starts `svcnet up --nodes 0` on a free loopback port in a temporary data dir, fills it with Services
# and Ready pods, times readiness changes and a restart's resync, and prints a table of
# figure / measured / target. Extra arguments go to ctrlbench, e.g.
#   bench/controllers.sh -services 1000          # the quick run: about 2 minutes on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/svcnet-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building svcnet and ctrlbench in $tmp ..." >&2
go build -o "$tmp/svcnet" ./cmd/svcnet
go build -o "$tmp/ctrlbench" ./bench/cmd/ctrlbench
"$tmp/ctrlbench" -svcnet "$tmp/svcnet" "$@"
