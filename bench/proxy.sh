#!/usr/bin/env bash
# Service proxy benchmark: builds bench/cmd/proxybench, creates a throwaway network namespace
# (svcnet-bench-proxy-*), runs proxybench inside it (the proxy programs nftables there, never in the
# host's namespace), and removes the namespace whatever happens. Needs root. Extra arguments go to
# proxybench, e.g.
#   sudo bench/proxy.sh                          # 10,000 Services / 100,000 endpoints: about 30 seconds
#   sudo bench/proxy.sh -services 1000 -changes 100
#   sudo bench/proxy.sh -backend nft             # the same through the nft tool, for comparison
#   sudo bench/proxy.sh -fake managed            # the fake API with field management on every write
#   sudo bench/proxy.sh -cpuprofile /tmp/cold.prof -memprofile /tmp/cold.mem   # profiles of the cold start
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/proxy.sh needs root: it creates a network namespace and programs nftables in it (run it with sudo)" >&2
	exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/svcnet-bench.XXXXXX")
ns="svcnet-bench-proxy-$$-$RANDOM"
cleanup() {
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
echo "building proxybench in $tmp ..." >&2
go build -o "$tmp/proxybench" ./bench/cmd/proxybench
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
echo "running in network namespace $ns (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
ip netns exec "$ns" "$tmp/proxybench" "$@"
