#!/usr/bin/env bash
# First-packet cost of the service proxy: builds bench/cmd/connbench and creates three identical
# "worlds" of throwaway network namespaces (svcnet-t-bench-<random>-<world>-<role>): a client pod
# 10.244.3.9 and a backend pod 10.244.1.10-19, each wired with a veth pair to a node namespace that
# forwards between them. In the "small" and "big" worlds connbench runs the proxy (nftables) in the
# node with 10 and with 10,000 Services; "none" has no table. It then measures new TCP connections
# per second to the pod IP and to a ClusterIP in each. The namespaces are removed whatever happens.
# Needs root. Extra arguments go to connbench, e.g.
#   sudo bench/conn.sh                          # 10 / 10,000 Services, 5 s per case, 3 rounds: about 2 minutes
#   sudo bench/conn.sh -services 1000 -repeat 1 -duration 2s
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/conn.sh needs root: it creates network namespaces and programs nftables in them (run it with sudo)" >&2
	exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/svcnet-bench.XXXXXX")
prefix="svcnet-t-bench-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
made=()
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "building connbench in $tmp ..." >&2
go build -o "$tmp/connbench" ./bench/cmd/connbench

for w in none small big; do
	node="$prefix-$w-node" cli="$prefix-$w-client" back="$prefix-$w-backend"
	for ns in "$node" "$cli" "$back"; do
		ip netns add "$ns"
		made+=("$ns")
		ip -n "$ns" link set lo up
	done
	# client pod 10.244.3.9 -- 10.244.3.1 node 10.244.1.1 -- 10.244.1.10-19 backend pod
	ip -n "$node" link add veth-c type veth peer name eth0 netns "$cli"
	ip -n "$node" link add veth-b type veth peer name eth0 netns "$back"
	ip -n "$node" addr add 10.244.3.1/24 dev veth-c
	ip -n "$node" addr add 10.244.1.1/24 dev veth-b
	ip -n "$cli" addr add 10.244.3.9/24 dev eth0
	for i in $(seq 10 19); do ip -n "$back" addr add "10.244.1.$i/24" dev eth0; done
	ip -n "$node" link set veth-c up
	ip -n "$node" link set veth-b up
	ip -n "$cli" link set eth0 up
	ip -n "$back" link set eth0 up
	ip -n "$cli" route add default via 10.244.3.1
	ip -n "$back" route add default via 10.244.1.1
	ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
done

echo "namespaces $prefix-{none,small,big}-{node,client,backend}; nf_conntrack_max $(cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || echo ?); load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# connbench runs in the background so that a signal to this script reaches it (it stops its
# proxies, which delete their tables, and its children die with it) before the namespaces go.
"$tmp/connbench" -netns-prefix "$prefix" "$@" &
pid=$!
set +e
wait "$pid"
rc=$?
pid=
exit "$rc"
