#!/usr/bin/env bash
# A distributed AdPlatform on one machine, on loopback: the real data plane that
# scripts/services.sh starts (redis-server for DragonflyDB, Tansu for Redpanda, ClickHouse) plus
# three serving processes (decide, bid, track), one API process and one ingest process. The
# catalog store is one SQLite file shared by every process (ScyllaDB when SCYLLA_URI is set).
#
#   scripts/local-cluster.sh up      # start everything, print the addresses
#   scripts/local-cluster.sh down    # stop the processes this script started
#   scripts/local-cluster.sh status
#
# Environment (all optional):
#   ADP_BIN            the adplatform binary (default: target/release/adplatform, built if missing)
#   ADP_CLUSTER_DIR    state, logs and pids (default /var/tmp/adplatform-cluster)
#   ADP_CLUSTER_PORT   first HTTP port (default 18500): api = +0, serving = +1..+3, ingest = +9
#   ADP_CLUSTER_PREFIX Kafka topic prefix, Dragonfly key prefix and ClickHouse database suffix
#                      (default adpcluster)
#   ADP_CLUSTER_ENV    extra KEY=VALUE lines (a file) given to every process, e.g. lease settings
#   SCYLLA_URI         host:port of a ScyllaDB node: use it as the catalog store
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${ADP_CLUSTER_DIR:-/var/tmp/adplatform-cluster}
PORT=${ADP_CLUSTER_PORT:-18500}
PREFIX=${ADP_CLUSTER_PREFIX:-adpcluster}
SERVICES_ENV=${ADP_SERVICES_DIR:-/var/tmp/adplatform-services}/env
ADMIN_KEY_FILE="$DIR/admin.key"

log() { printf '[local-cluster] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

need() { command -v "$1" >/dev/null 2>&1 || die "missing tool: $1 ($2)"; }

binary() {
    if [ -n "${ADP_BIN:-}" ]; then
        [ -x "$ADP_BIN" ] || die "ADP_BIN=$ADP_BIN is not an executable"
        echo "$ADP_BIN"
        return
    fi
    local bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/adplatform"
    if [ ! -x "$bin" ]; then
        need cargo "install Rust from https://rustup.rs"
        log "building $bin"
        (cd "$ROOT" && cargo build --release --locked -p adplatform >&2)
    fi
    echo "$bin"
}

# The processes get exactly the cluster's configuration: other ADP_ variables (this script's
# own, or a developer's) would be refused as unknown config keys or silently change it.
clean_env() {
    local v
    for v in $(compgen -e); do
        case "$v" in ADP_*) unset "$v" ;; esac
    done
}

# Random secrets, made once per cluster dir.
secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

write_env() {
    # shellcheck disable=SC1090
    . "$SERVICES_ENV"
    [ -f "$DIR/signing.key" ] || secret >"$DIR/signing.key"
    [ -f "$ADMIN_KEY_FILE" ] || secret >"$ADMIN_KEY_FILE"
    local backend=sqlite
    if [ -n "${SCYLLA_URI:-}" ]; then backend=scylla; fi
    cat >"$DIR/cluster.env" <<ENV
ADP_MODE=distributed
ADP_STORE_BACKEND=$backend
ADP_STORE_SQLITE_PATH=$DIR/catalog.sqlite
ADP_SCYLLA_NODES=${SCYLLA_URI:-127.0.0.1:9042}
ADP_SCYLLA_KEYSPACE=${PREFIX}
ADP_SCYLLA_REPLICATION=datacenter1:1
ADP_KAFKA_BROKERS=$ADP_TEST_KAFKA
ADP_KAFKA_TOPIC_PREFIX=$PREFIX
ADP_KAFKA_PARTITIONS=3
ADP_DRAGONFLY_URL=$ADP_TEST_REDIS
ADP_DRAGONFLY_PREFIX=$PREFIX
ADP_CLICKHOUSE_URL=$ADP_TEST_CLICKHOUSE
ADP_CLICKHOUSE_DATABASE=${PREFIX}
ADP_CLICKHOUSE_BATCH_MS=200
ADP_TRACKING_SIGNING_KEYS=k1:$(cat "$DIR/signing.key")
ADP_AUTH_ADMIN_KEY=$(cat "$ADMIN_KEY_FILE")
ADP_SERVING_PUBLIC_URL=http://127.0.0.1:$((PORT + 1))
ADP_SERVER_THREADS=1
ADP_LOG_LEVEL=${ADP_LOG_LEVEL:-info}
ENV
    if [ -n "${ADP_CLUSTER_ENV:-}" ]; then
        cat "$ADP_CLUSTER_ENV" >>"$DIR/cluster.env"
    fi
}

# alive PID: the process runs. A killed process stays a zombie until its parent reaps it (the
# shell that started it may be gone, and then whoever inherited it reaps it when it gets round
# to it): `kill -0` still succeeds on a zombie, so its state is read too.
alive() {
    local pid=$1 state
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || true
    [ "$state" != Z ]
}

# start NAME PORT ROLES [extra env...]
start() {
    local name=$1 port=$2 roles=$3
    shift 3
    local pidfile="$DIR/$name.pid"
    if [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; then
        log "$name already running (pid $(cat "$pidfile"))"
        return
    fi
    mkdir -p "$DIR/$name"
    # A restart keeps the previous run's log (a process killed or crashed leaves its story there).
    if [ -s "$DIR/$name.log" ]; then
        mv -f "$DIR/$name.log" "$DIR/$name.log.prev"
    fi
    (
        clean_env
        set -a
        # shellcheck disable=SC1091
        . "$DIR/cluster.env"
        set +a
        export ADP_SERVER_LISTEN="127.0.0.1:$port" ADP_SERVER_DATA_DIR="$DIR/$name" ADP_SERVER_ROLES="$roles"
        for kv in "$@"; do export "${kv?}"; done
        exec "$BIN" serve >"$DIR/$name.log" 2>&1
    ) &
    echo $! >"$pidfile"
}

wait_ready() {
    local name=$1 port=$2 deadline=$((SECONDS + 90))
    until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
        local pid
        pid=$(cat "$DIR/$name.pid")
        if ! alive "$pid"; then
            tail -n 20 "$DIR/$name.log" >&2 || true
            # Started by this shell: its exit status tells a crash (128 + signal) from an exit.
            local status=0
            wait "$pid" 2>/dev/null || status=$?
            die "$name exited (status $status); log: $DIR/$name.log"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "$name not ready on port $port after 90 s; log: $DIR/$name.log"
        sleep 0.2
    done
}

up() {
    need curl "apt-get install -y curl"
    mkdir -p "$DIR"
    "$ROOT/scripts/services.sh" start >&2
    BIN=$(binary)
    write_env
    log "migrating the ClickHouse schema"
    (
        clean_env
        set -a
        # shellcheck disable=SC1091
        . "$DIR/cluster.env"
        set +a
        "$BIN" migrate --clickhouse >&2
        if [ -n "${SCYLLA_URI:-}" ]; then "$BIN" migrate --scylla >&2; fi
    )
    start api "$PORT" api ADP_DEMO_ENABLED=true
    wait_ready api "$PORT"
    for i in 1 2 3; do
        start "serve$i" $((PORT + i)) decide,bid,track
    done
    start ingest $((PORT + 9)) ingest
    for i in 1 2 3; do wait_ready "serve$i" $((PORT + i)); done
    wait_ready ingest $((PORT + 9))
    cat <<OUT
local cluster up (state in $DIR)
  api        http://127.0.0.1:$PORT        (admin key in $ADMIN_KEY_FILE)
  serving 1  http://127.0.0.1:$((PORT + 1))  decide, bid, track
  serving 2  http://127.0.0.1:$((PORT + 2))  decide, bid, track
  serving 3  http://127.0.0.1:$((PORT + 3))  decide, bid, track
  ingest     http://127.0.0.1:$((PORT + 9))  (health and metrics)
  data plane $(tr '\n' ' ' <"$SERVICES_ENV")
try:
  curl -s http://127.0.0.1:$((PORT + 1))/v1/decide -d '{"placements":[{"id":"demo-mrec"}],"user":{"id":"u1"}}'
  curl -s http://127.0.0.1:$((PORT + 2))/api/v1/catalog/version
OUT
}

down() {
    local stopped=0
    for pidfile in "$DIR"/*.pid; do
        [ -e "$pidfile" ] || continue
        local pid
        pid=$(cat "$pidfile")
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
            if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
            stopped=$((stopped + 1))
        fi
        rm -f "$pidfile"
    done
    log "stopped $stopped processes (data plane left running: scripts/services.sh stop)"
}

status() {
    for pidfile in "$DIR"/*.pid; do
        [ -e "$pidfile" ] || continue
        local name pid
        name=$(basename "$pidfile" .pid)
        pid=$(cat "$pidfile")
        if alive "$pid"; then echo "$name running (pid $pid)"; else echo "$name stopped"; fi
    done
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
