#!/usr/bin/env bash
# Starts, stops and reports Haul's two long-running processes on one machine: the daemon
# (`haul daemon`: schedules, jobs, the bus) and the web console (`haul web`), on the embedded
# default (SQLite in $HAUL_HOME, the repository in $HAUL_HOME/repository).
#
#   bash scripts/haul-services.sh start|stop|restart|status
#
# With systemd as PID 1 (and root) it installs and drives two units, haul-daemon.service and
# haul-web.service, which restart them on failure and at boot. Anywhere else it runs them with
# nohup, pid files in $HAUL_HOME/run and logs in $HAUL_HOME/log. HAUL_SERVICES_MODE=systemd or
# pidfile picks one explicitly. docs/operations.md describes both.
#
# Settings (environment): HAUL_HOME (/var/lib/haul), HAUL_REPOSITORY ($HAUL_HOME/repository),
# HAUL_PASSWORD_FILE ($HAUL_HOME/passphrase), HAUL_WEB_LISTEN (127.0.0.1:8080),
# HAUL_HTTP_PORT (the daemon's /healthz and /metrics, 7460; "off" for none), HAUL_DIRECTORY_FILE
# (the console's directory login config, none by default).
set -euo pipefail
# Logs and pid files are for the daemon's user and group only.
umask 027
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HAUL=$ROOT/bin/haul
NODE=$(command -v node || true)
export HAUL_HOME=${HAUL_HOME:-/var/lib/haul}
export HAUL_REPOSITORY=${HAUL_REPOSITORY:-$HAUL_HOME/repository}
export HAUL_PASSWORD_FILE=${HAUL_PASSWORD_FILE:-$HAUL_HOME/passphrase}
HAUL_WEB_LISTEN=${HAUL_WEB_LISTEN:-127.0.0.1:8080}
RUN_DIR=$HAUL_HOME/run
LOG_DIR=$HAUL_HOME/log
SERVICES=(daemon web)

die() {
  echo "haul-services: $*" >&2
  exit 1
}

mode() {
  case "${HAUL_SERVICES_MODE:-auto}" in
    systemd | pidfile) echo "$HAUL_SERVICES_MODE" ;;
    auto)
      if [ -d /run/systemd/system ] && [ "$(id -u)" = 0 ] && command -v systemctl >/dev/null; then echo systemd; else echo pidfile; fi
      ;;
    *) die "HAUL_SERVICES_MODE must be systemd, pidfile or auto, not \"$HAUL_SERVICES_MODE\"." ;;
  esac
}

# The command line of each service, as words.
service_args() {
  case "$1" in
    daemon) echo "daemon --log-file $LOG_DIR/daemon.log" ;;
    web) echo "web --listen $HAUL_WEB_LISTEN${HAUL_DIRECTORY_FILE:+ --directory $HAUL_DIRECTORY_FILE}" ;;
  esac
}

preflight() {
  [ -n "$NODE" ] || die "node is not on PATH; install Node.js 20 or newer."
  [ -f "$ROOT/dist/daemon/cli/main.js" ] || die "the CLI is not built; run \`npm run build\` in $ROOT first."
  [ -f "$HAUL_REPOSITORY/config" ] || die "no repository at $HAUL_REPOSITORY; run \`bash scripts/setup.sh\` (or \`haul init\`) first."
  [ -r "$HAUL_PASSWORD_FILE" ] || die "cannot read the passphrase file $HAUL_PASSWORD_FILE; set HAUL_PASSWORD_FILE."
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  chmod 700 "$RUN_DIR"
  chmod 750 "$LOG_DIR"
}

# ---- pid files -------------------------------------------------------------------------------

pid_file() { echo "$RUN_DIR/$1.pid"; }

# The pid of a running service, or nothing. A pid file whose process is gone, or is no longer
# Haul (the pid was reused), does not count.
running_pid() {
  local file pid
  file=$(pid_file "$1")
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "bin/haul $1"; then
    echo "$pid"
  fi
}

# Waits until the service answers: the daemon's bus, the console's "Haul console on URL" line.
wait_ready() {
  local name=$1 pid=$2 out=$3
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || return 1
    case "$name" in
      daemon) "$HAUL" status --quiet >/dev/null 2>&1 && return 0 ;;
      web) grep -q '^Haul console on ' "$out" 2>/dev/null && return 0 ;;
    esac
    sleep 0.1
  done
  return 1
}

start_pidfile() {
  local name=$1 pid out
  pid=$(running_pid "$name")
  if [ -n "$pid" ]; then
    echo "$name: already running (pid $pid)"
    return 0
  fi
  out=$LOG_DIR/$name.out
  # shellcheck disable=SC2046 # the arguments are words by design
  nohup "$NODE" "$HAUL" $(service_args "$name") >>"$out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$(pid_file "$name")"
  if ! wait_ready "$name" "$pid" "$out"; then
    echo "haul-services: $name did not start; the end of $out:" >&2
    tail -n 20 "$out" >&2 || true
    kill "$pid" 2>/dev/null || true
    rm -f "$(pid_file "$name")"
    exit 1
  fi
  echo "$name: started (pid $pid, log $out)"
}

stop_pidfile() {
  local name=$1 pid
  pid=$(running_pid "$name")
  if [ -z "$pid" ]; then
    rm -f "$(pid_file "$name")"
    echo "$name: not running"
    return 0
  fi
  kill -TERM "$pid"
  # The daemon gives running jobs their grace period (60 s by default) before it cancels them.
  for _ in $(seq 1 900); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "haul-services: $name (pid $pid) did not stop within 90 s; it was sent SIGTERM, send it another to cancel its jobs at once." >&2
    return 1
  fi
  rm -f "$(pid_file "$name")"
  echo "$name: stopped"
}

status_pidfile() {
  local name=$1 pid
  pid=$(running_pid "$name")
  if [ -n "$pid" ]; then echo "$name: running (pid $pid)"; else echo "$name: stopped"; return 3; fi
}

# ---- systemd ---------------------------------------------------------------------------------

unit() { echo "haul-$1.service"; }

write_unit() {
  local name=$1 file
  file=/etc/systemd/system/$(unit "$name")
  cat >"$file" <<UNIT
# Written by $ROOT/scripts/haul-services.sh; run it again after moving Haul.
[Unit]
Description=Haul $name
After=network-online.target
Wants=network-online.target

[Service]
Environment=HAUL_HOME=$HAUL_HOME
Environment=HAUL_REPOSITORY=$HAUL_REPOSITORY
Environment=HAUL_PASSWORD_FILE=$HAUL_PASSWORD_FILE
Environment=HAUL_HTTP_PORT=${HAUL_HTTP_PORT:-7460}
ExecStart=$NODE $HAUL $(service_args "$name")
StandardOutput=append:$LOG_DIR/$name.out
StandardError=append:$LOG_DIR/$name.out
Restart=on-failure
RestartSec=5
# SIGTERM lets running jobs finish within the daemon's grace period (60 s).
TimeoutStopSec=90

[Install]
WantedBy=multi-user.target
UNIT
}

start_systemd() {
  local name=$1
  write_unit "$name"
  systemctl daemon-reload
  systemctl enable --now "$(unit "$name")" >/dev/null
  echo "$name: started ($(unit "$name"); log $LOG_DIR/$name.out)"
}

stop_systemd() {
  systemctl stop "$(unit "$1")" 2>/dev/null || true
  echo "$1: stopped"
}

status_systemd() {
  if systemctl is-active --quiet "$(unit "$1")"; then echo "$1: running ($(unit "$1"))"; else echo "$1: stopped"; return 3; fi
}

# ---- main ------------------------------------------------------------------------------------

how=$(mode)
case "${1:-}" in
  start)
    preflight
    for s in "${SERVICES[@]}"; do "start_$how" "$s"; done
    ;;
  stop)
    # The console first: it talks to the daemon.
    for s in web daemon; do "stop_$how" "$s"; done
    ;;
  restart)
    "$0" stop
    "$0" start
    ;;
  status)
    rc=0
    for s in "${SERVICES[@]}"; do "status_$how" "$s" || rc=3; done
    exit $rc
    ;;
  *)
    echo "usage: bash scripts/haul-services.sh start|stop|restart|status" >&2
    exit 2
    ;;
esac
