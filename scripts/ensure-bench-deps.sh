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
# shellcheck source=apt-install.sh
source scripts/apt-install.sh
# Without them the benchmarks leave those columns out.
apt_install "the benchmarks (to compare with and to count bytes on the wire)" 0 "${need[@]}"
