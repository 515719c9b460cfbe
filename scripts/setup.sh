#!/usr/bin/env bash
# Command 1 of the README: sets Haul up on a fresh Debian 12 machine with Node 20+ (as root) on
# the embedded default (a local repository directory; no other service), proves it works, and
# starts the daemon and the web console in the background (scripts/haul-services.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
HAUL_HOME=${HAUL_HOME:-/var/lib/haul}

major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
  echo "haul: Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none)). Install it, then run this again." >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "haul: run this as root: it installs Debian packages (build tools for the native addons and the probe)." >&2
  exit 1
fi

echo "==> Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends build-essential python3 musl-tools libzstd-dev ca-certificates >/dev/null

echo "==> npm packages and build"
npm ci --no-audit --no-fund
npm run build
bash probe/build.sh

echo "==> repository in $HAUL_HOME"
mkdir -p "$HAUL_HOME" && chmod 700 "$HAUL_HOME"
if [ ! -f "$HAUL_HOME/passphrase" ]; then
  (umask 077 && head -c 32 /dev/urandom | base64 > "$HAUL_HOME/passphrase")
fi
export HAUL_REPOSITORY="$HAUL_HOME/repository" HAUL_PASSWORD_FILE="$HAUL_HOME/passphrase"
if [ ! -f "$HAUL_REPOSITORY/config" ]; then
  ./bin/haul init
fi

echo "==> self-check: back up, restore and verify Haul's own docs"
./bin/haul backup-local --client selfcheck "$PWD/docs"
restore_dir=$(mktemp -d)
./bin/haul restore "latest:$PWD/docs" --client selfcheck --target "$restore_dir"
diff -r "$PWD/docs" "$restore_dir" && echo "restored copy is identical"
rm -rf "$restore_dir"
./bin/haul check --read-data

echo "==> web console: the first admin"
export HAUL_HOME
if ./bin/haul user list --json | grep -q '"role": "admin"'; then
  echo "an admin exists already (bin/haul user list)"
else
  ./bin/haul user add admin --role admin
fi

echo "==> the daemon and the web console, in the background"
HAUL_WEB_LISTEN=${HAUL_WEB_LISTEN:-127.0.0.1:8080}
export HAUL_WEB_LISTEN
bash scripts/haul-services.sh start

cat <<MSG

Haul is set up and running.
  repository: $HAUL_REPOSITORY
  passphrase: $HAUL_PASSWORD_FILE   (back it up somewhere else: without it the repository is unreadable)
  console:    http://$HAUL_WEB_LISTEN   (sign in as admin with the one-time password above)
  logs:       $HAUL_HOME/log/   (jobs: $HAUL_HOME/logs/)
Use it:
  export HAUL_HOME=$HAUL_HOME HAUL_REPOSITORY=$HAUL_REPOSITORY HAUL_PASSWORD_FILE=$HAUL_PASSWORD_FILE
  $PWD/bin/haul status                              (the daemon, over its bus)
  $PWD/bin/haul --help
  bash $PWD/scripts/haul-services.sh status|stop|start
MSG
