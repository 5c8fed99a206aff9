#!/usr/bin/env bash
# The project's test command: installs what the tests need on a fresh Debian/Ubuntu machine, then runs
# vet and every test. Tests that need root and network namespaces skip when unprivileged, and must run
# (never skip) when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
# The multi-node tests curl between pods, as a user does.
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" </dev/null >/dev/null
  else
    echo "note: missing ${need[*]}; tests that need them will skip (run as root to install)" >&2
  fi
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:" >&2; echo "$unformatted" >&2; exit 1
fi
go vet ./...
go test -count=1 -timeout 30m ./... "$@"
# The DNS packet handler is fuzzed for a bounded time on every run (the seed corpus also runs above,
# as a plain test): malformed packets must get FORMERR/NOTIMP/REFUSED, never a crash.
go test -run '^$' -fuzz '^FuzzServeDNS$' -fuzztime 20s ./internal/dns/
