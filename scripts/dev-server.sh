# Sourced by test.sh and measure.sh: runs `meshport dev` on a free loopback port.
#   free_port                      prints a free loopback port.
#   start_dev_server PROFILE WORK  builds nothing; starts target/PROFILE/meshport with its data
#                                  and log (WORK/meshport.log) in WORK, on DEV_SERVER_PORT (or a
#                                  free port), waits until /readyz answers, and sets
#                                  DEV_SERVER_PID and DEV_SERVER_URL.
#   stop_dev_server                SIGTERM, at most 35 s for the drain, then SIGKILL.

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
  for _ in $(seq 1 300); do
    curl -fsS "$DEV_SERVER_URL/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$DEV_SERVER_PID" 2>/dev/null || { echo "meshport dev exited" >&2; return 1; }
    sleep 0.2
  done
  curl -fsS "$DEV_SERVER_URL/readyz" >/dev/null
}

stop_dev_server() {
  [ -n "${DEV_SERVER_PID:-}" ] || return 0
  if kill -TERM "$DEV_SERVER_PID" 2>/dev/null; then
    # meshport drains for at most 30 s; do not wait for ever.
    for _ in $(seq 1 350); do kill -0 "$DEV_SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DEV_SERVER_PID" 2>/dev/null || true
  fi
}
