# Sourced by the ensure-*-deps scripts: installs Debian packages that are missing, as root.
# apt_install WHAT ON_NOT_ROOT PACKAGE...: WHAT says what needs them (in messages); ON_NOT_ROOT is
# the exit status when not root (1: required, 0: optional, the caller goes on without them).
apt_install() {
  local what=$1 on_not_root=$2
  shift 2
  [ $# -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "haul: $what need these Debian packages: $*. Install them as root: apt-get install -y $*" >&2
    exit "$on_not_root"
  fi
  echo "haul: installing for $what: $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
