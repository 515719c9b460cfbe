#!/usr/bin/env bash
# Installs what the benchmarks compare against or measure with, when missing (Debian 12, as
# root): restic and borg (the tools Haul is measured against) and iptables (bytes on the wire
# of the SSH benchmark). Run by `npm run bench` and `npm run bench:prune`; the test suite's own
# needs come first (scripts/ensure-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-test-deps.sh

need=()
command -v restic >/dev/null || need+=(restic)
command -v borg >/dev/null || need+=(borgbackup)
command -v iptables >/dev/null || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "haul: the benchmarks compare with and measure by these Debian packages: ${need[*]}. Install them as root: apt-get install -y ${need[*]} (a benchmark without them leaves those columns out)" >&2
    exit 0
  fi
  echo "haul: installing benchmark dependencies: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
