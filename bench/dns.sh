#!/usr/bin/env bash
# Cluster DNS benchmark: builds bench/cmd/dnsbench once and runs it. It starts the DNS server of
# internal/dns in a child process (GOMAXPROCS=-server-procs, default 1) fed by client-go informers from a
# fake API server holding 10,000 Services and 100,000 pods, loads it over loopback UDP and prints a table
# of figure / measured / target. Extra arguments go to dnsbench, e.g.
#   bench/dns.sh -services 1000 -duration 2s
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/svcnet-dnsbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building dnsbench in $tmp ..." >&2
go build -o "$tmp/dnsbench" ./bench/cmd/dnsbench
"$tmp/dnsbench" "$@"
