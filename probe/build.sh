#!/usr/bin/env bash
# Builds the static haul-probe binaries into probe/dist/:
#   haul-probe-<host arch>  with musl-gcc (or gcc) -static, zstd linked in when libzstd.a exists
#   haul-probe-aarch64      when aarch64-linux-gnu-gcc exists (cross build)
# Idempotent: a target is rebuilt only when a source, this script or the
# compile command changed. Fails if a binary reaches 2 MiB or a warning appears.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$here/src
out=$here/dist
max_bytes=$((2 * 1024 * 1024))

cflags=(-std=c11 -O2 -D_POSIX_C_SOURCE=200809L
        -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
        -fstack-protector-strong -ffunction-sections -fdata-sections
        -static -s -Wl,--gc-sections)

mkdir -p "$out"
mapfile -t sources < <(find "$src" -name '*.c' | sort)

# build NAME CC ARCH: compile all sources into dist/haul-probe-NAME.
build() {
    local name=$1 cc=$2 arch=$3
    local target=$out/haul-probe-$name
    local zstd_lib=/usr/lib/$arch-linux-gnu/libzstd.a
    local extra=()
    if [[ -f $zstd_lib && -f /usr/include/zstd.h ]]; then
        # musl's include path lacks /usr/include; search it last so only zstd.h comes from there.
        extra=(-idirafter /usr/include "$zstd_lib")
    else
        echo "warning: $zstd_lib not found: building $name without zstd (HAUL_NO_ZSTD)" >&2
        [[ $arch == "$(uname -m)" ]] || echo "         (dpkg --add-architecture arm64 && apt-get install libzstd-dev:arm64 adds it)" >&2
        extra=(-DHAUL_NO_ZSTD)
    fi

    local cmd=("$cc" "${cflags[@]}" -o "$target.tmp.$$" "${sources[@]}" "${extra[@]}")
    local stamp=$out/.haul-probe-$name.cmd
    local want="${cmd[*]/%.tmp.$$/}"
    if [[ -f $target && -f $stamp && "$(cat "$stamp")" == "$want" ]] &&
       [[ -z $(find "$src" "$here/build.sh" -newer "$target" -print -quit) ]]; then
        echo "up to date: $target"
    else
        echo "building $target with $cc"
        # -Werror turns every warning into a failure; write to a temp name so
        # concurrent builds never see a half-written binary.
        if ! "${cmd[@]}"; then
            rm -f "$target.tmp.$$"
            echo "error: compiling $name failed" >&2
            return 1
        fi
        mv -f "$target.tmp.$$" "$target"
        printf '%s' "$want" > "$stamp"
    fi

    local size
    size=$(stat -c %s "$target")
    printf '%-40s %8d bytes (%d KiB)\n' "$target" "$size" $((size / 1024))
    if (( size >= max_bytes )); then
        echo "error: $target is $size bytes, the limit is $max_bytes" >&2
        return 1
    fi
}

host_arch=$(uname -m)
native_cc=
for c in musl-gcc gcc cc; do
    if command -v "$c" > /dev/null; then native_cc=$c; break; fi
done
if [[ -z $native_cc ]]; then
    echo "error: no C compiler found (need musl-gcc, gcc or cc): apt-get install -y musl-tools libzstd-dev" >&2
    exit 1
fi
[[ $native_cc == musl-gcc ]] || echo "warning: musl-gcc not found, linking against the system libc with $native_cc -static" >&2

build "$host_arch" "$native_cc" "$host_arch"

if [[ $host_arch != aarch64 ]] && command -v aarch64-linux-gnu-gcc > /dev/null; then
    build aarch64 aarch64-linux-gnu-gcc aarch64
fi
