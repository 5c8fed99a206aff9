#!/usr/bin/env bash
# Node and pod benchmarks (needs root): builds svcnet once, then runs bench/cmd/nodebench against it,
# which starts `svcnet up --nodes 3` clusters of its own (unique --name, temporary data dir, a free
# 127.0.0.1 port), times cold starts, pod creation to Ready, pod deletion and 100 pods on one node
# with the agent's memory, takes every cluster down again, and prints a table of
# figure / measured / target. Extra arguments go to nodebench, e.g.
#   sudo bench/nodes.sh -runs 3 -pods 20       # a quicker run
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/nodes.sh: needs root: svcnet's nodes and pods are network namespaces. Run: sudo bench/nodes.sh" >&2
	exit 2
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/svcnet-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building svcnet and nodebench in $tmp ..." >&2
go build -o "$tmp/svcnet" ./cmd/svcnet
go build -o "$tmp/nodebench" ./bench/cmd/nodebench
# nodebench runs in the background so that a SIGTERM to this script reaches it too (and it takes its
# cluster down) before the EXIT trap removes the binaries.
set +e
"$tmp/nodebench" -svcnet "$tmp/svcnet" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' INT TERM
while :; do
	wait "$pid"
	rc=$?
	kill -0 "$pid" 2>/dev/null || break
done
exit "$rc"
