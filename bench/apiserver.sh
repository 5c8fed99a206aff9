#!/usr/bin/env bash
# Control-plane benchmarks: builds svcnet once, then runs bench/cmd/apibench against it, which starts
# `svcnet up --nodes 0` (with -split: `svcnet etcd` and `svcnet apiserver`, no controllers) on free
# loopback ports in a temporary data dir and prints a table of figure / measured / target. Extra
# arguments go to apibench, e.g.
#   bench/apiserver.sh -services 2000 -cold-runs 2
#   bench/apiserver.sh -split
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/svcnet-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building svcnet and apibench in $tmp ..." >&2
go build -o "$tmp/svcnet" ./cmd/svcnet
go build -o "$tmp/apibench" ./bench/cmd/apibench
"$tmp/apibench" -svcnet "$tmp/svcnet" "$@"
