#!/usr/bin/env bash
# A standalone ZooKeeper from Debian's `zookeeper` package, on 127.0.0.1, without systemd
# (reference/zookeeper-notes.md §1). The Rust test tests/tests/coord_zookeeper.rs starts its own server the same way;
# this script is for CI setup and for running the `zookeeper` backend by hand.
#
#   scripts/zookeeper.sh install          install the package (and a JRE) unless java and the jar are there
#   scripts/zookeeper.sh start [PORT]     start a server (default port 21810) in a fresh temp dir, wait until it
#                                         serves, print `ZK_PID=… ZK_DIR=… ZK_ADDR=…`
#   scripts/zookeeper.sh restart [PORT]   kill -9 that server and start it again on the same data dir and port
#   scripts/zookeeper.sh stop [PORT]      stop that server by its PID, remove its dir
#   scripts/zookeeper.sh status [PORT]    print its `srvr` answer; exit 1 if it does not serve
#
# The server uses the test profile: tickTime=200 (a requested session timeout from 0.4 s to 60 s is granted as
# asked; a silent session expires between its timeout and one tick later), loopback only, no AdminServer on 8080,
# four-letter words off except `srvr` (the readiness probe). State of a started server: $STATE_DIR/zookeeper-PORT.env.
set -euo pipefail

JAR=/usr/share/java/zookeeper.jar
SLF4J=/usr/share/java/slf4j-simple.jar
STATE_DIR=${ZK_STATE_DIR:-${TMPDIR:-/tmp}}

usage() {
  echo "usage: $0 install | start [PORT] | restart [PORT] | stop [PORT] | status [PORT]" >&2
  exit 2
}

state_file() { echo "$STATE_DIR/zookeeper-$1.env"; }

# srvr answers with a `Mode:` line only once the server serves; an open port is not enough.
srvr() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf srvr >&3; cat <&3" 2>/dev/null
}

installed() { [[ -f $JAR ]] && command -v java >/dev/null 2>&1; }

cmd_install() {
  if installed; then
    echo "zookeeper already installed ($JAR, $(command -v java))"
    return
  fi
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to apt-get install zookeeper" >&2; exit 1; }
    sudo=(sudo)
  fi
  # `zookeeper`, not `zookeeperd`: no service wrapper that would start a server on port 2181.
  "${sudo[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends zookeeper
  installed || { echo "zookeeper install did not provide $JAR and java" >&2; exit 1; }
}

cmd_start() {
  local port=${1:-21810}
  installed || { echo "zookeeper is not installed: run $0 install" >&2; exit 1; }
  local state
  state=$(state_file "$port")
  if [[ -f $state ]]; then
    echo "a server on port $port is already recorded in $state; stop it first" >&2
    exit 1
  fi
  local dir
  dir=$(mktemp -d -t "zk-$port-XXXXXX")
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<CFG
tickTime=200
minSessionTimeout=400
maxSessionTimeout=60000
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=
CFG
  launch "$dir" "$port"
}

# Starts java on $1/zoo.cfg in the background, records it, waits until it serves.
launch() {
  local dir=$1 port=$2 state
  state=$(state_file "$port")
  local cp=$JAR
  [[ -f $SLF4J ]] && cp="$cp:$SLF4J"
  # java itself in the background (no wrapper subshell), so $! is the server's PID.
  java -Xms32m -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$cp" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
    >>"$dir/zk.log" 2>&1 </dev/null &
  local pid=$!
  echo "ZK_PID=$pid ZK_DIR=$dir ZK_ADDR=127.0.0.1:$port" >"$state"
  local out
  for _ in $(seq 1 300); do
    if out=$(srvr "$port") && grep -q '^Mode: standalone' <<<"$out"; then
      echo "ZK_PID=$pid ZK_DIR=$dir ZK_ADDR=127.0.0.1:$port"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "zookeeper exited during startup; log:" >&2
      cat "$dir/zk.log" >&2
      rm -rf "$dir" "$state"
      exit 1
    fi
    sleep 0.1
  done
  echo "zookeeper not serving after 30 s; log:" >&2
  cat "$dir/zk.log" >&2
  cmd_stop "$port"
  exit 1
}

cmd_restart() {
  local port=${1:-21810}
  local state
  state=$(state_file "$port")
  [[ -f $state ]] || { echo "no server recorded for port $port ($state)" >&2; exit 1; }
  local ZK_PID ZK_DIR
  # shellcheck disable=SC1090
  . "$state"
  kill -9 "$ZK_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$ZK_PID" 2>/dev/null || break
    sleep 0.1
  done
  launch "$ZK_DIR" "$port"
}

cmd_stop() {
  local port=${1:-21810}
  local state
  state=$(state_file "$port")
  [[ -f $state ]] || { echo "no server recorded for port $port ($state)"; return; }
  local ZK_PID ZK_DIR
  # shellcheck disable=SC1090
  . "$state"
  kill "$ZK_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$ZK_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$ZK_PID" 2>/dev/null || true
  rm -rf "$ZK_DIR" "$state"
  echo "zookeeper on port $port (pid $ZK_PID) stopped"
}

cmd_status() {
  local port=${1:-21810} out
  if out=$(srvr "$port") && grep -q '^Mode:' <<<"$out"; then
    echo "$out"
  else
    echo "no zookeeper serving on 127.0.0.1:$port" >&2
    exit 1
  fi
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start "${2:-}" ;;
restart) cmd_restart "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
status) cmd_status "${2:-}" ;;
*) usage ;;
esac
