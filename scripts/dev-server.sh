# Sourced by test.sh and measure.sh: runs and stops the portal on free loopback ports.
#   free_port                      prints a free loopback port.
#   start_dev_server PROFILE WORK  builds nothing; starts target/PROFILE/meshport with its data
#                                  and log (WORK/meshport.log) in WORK, on DEV_SERVER_PORT (or a
#                                  free port), waits until /readyz answers, and sets
#                                  DEV_SERVER_PID and DEV_SERVER_URL.
#   stop_dev_server                SIGTERM, at most 35 s for the drain, then SIGKILL.
#   wait_ready URL PID SECONDS     waits until URL/readyz answers while PID lives.
#   stop_process_group PID         the same stop for PID's whole process group.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_dev_server() {
  local profile=$1 work=$2 port
  port="${DEV_SERVER_PORT:-$(free_port)}"
  MESHPORT_LISTEN="127.0.0.1:$port" MESHPORT_DATA_DIR="$work/data" \
    "$CARGO_TARGET_DIR/$profile/meshport" dev >"$work/meshport.log" 2>&1 &
  DEV_SERVER_PID=$!
  DEV_SERVER_URL="http://127.0.0.1:$port"
  wait_ready "$DEV_SERVER_URL" "$DEV_SERVER_PID" 60
}

wait_ready() {
  local url=$1 pid=$2 seconds=$3
  for _ in $(seq 1 $((seconds * 5))); do
    curl -fsS "$url/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { echo "the portal exited before it was ready" >&2; return 1; }
    sleep 0.2
  done
  curl -fsS "$url/readyz" >/dev/null
}

stop_dev_server() {
  [ -z "${DEV_SERVER_PID:-}" ] || stop_gracefully "$DEV_SERVER_PID"
}

stop_process_group() {
  stop_gracefully "-$1"
}

# SIGTERM to TARGET (a pid, or -pid for its group), at most 35 s for the drain, then SIGKILL.
stop_gracefully() {
  local target=$1
  if kill -TERM -- "$target" 2>/dev/null; then
    # meshport drains for at most 30 s; do not wait for ever.
    for _ in $(seq 1 350); do kill -0 -- "$target" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "$target" 2>/dev/null || true
  fi
}
