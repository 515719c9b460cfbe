#!/usr/bin/env bash
# Installs what the test suite needs when it is missing (Debian 12, as root), then builds the
# probe. Run by `npm test` before the tests; does nothing slow when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v make >/dev/null && command -v g++ >/dev/null || need+=(build-essential)
command -v python3 >/dev/null || need+=(python3)
command -v musl-gcc >/dev/null || need+=(musl-tools)
[ -f /usr/include/zstd.h ] && ls /usr/lib/*/libzstd.a >/dev/null 2>&1 || need+=(libzstd-dev)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
# The cross compiler without its C library headers cannot build the aarch64 probe.
[ -f /usr/aarch64-linux-gnu/include/stdio.h ] || need+=(libc6-dev-arm64-cross)
# The probe's portable SHA-256 path on a CPU without SHA extensions, and the aarch64 probe, run under qemu.
{ command -v qemu-x86_64-static >/dev/null && command -v qemu-aarch64-static >/dev/null; } || need+=(qemu-user-static)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
# Directory login tests start their own OpenLDAP server.
{ [ -x /usr/sbin/slapd ] && command -v ldapadd >/dev/null; } || need+=(slapd ldap-utils)
command -v chromium >/dev/null || need+=(chromium)
# fincore tells which of a file's pages are in the page cache: packs written with direct I/O have none.
command -v fincore >/dev/null || need+=(util-linux-extra)
{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; } || need+=(docker-compose)

# shellcheck source=apt-install.sh
source scripts/apt-install.sh
apt_install "the tests" 1 "${need[@]}"

bash probe/build.sh >&2
