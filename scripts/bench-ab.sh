#!/usr/bin/env bash
# bench-ab.sh: compares two builds of `adplatform` on `POST /v1/decide` by running them at the
# same time on the same core, so both see the same machine.
#
# Usage: scripts/bench-ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [SECONDS]
#   e.g. cp target/release/adplatform /tmp/adp-old; <change, cargo build --release>;
#        scripts/bench-ab.sh /tmp/adp-old target/release/adplatform
#
# Both servers (`serve --demo`, one serving thread, fresh data dirs) are pinned to SERVER_CPU;
# two wrk processes (one per server, CONNECTIONS each, the same Lua script) run at once on
# LOAD_CPU. The scheduler shares the server core between the two, so the ratio of their request
# rates is the inverse ratio of their CPU cost per request, measured under identical conditions.
# Sequential runs on this VM drift by ±10% within minutes; this ratio moves by about ±1% (an
# A/A run: 0.994–1.008). Servers swap ports every round. Prints each round's NEW/OLD ratio and
# the median.
#
# For the bid targets the demo's RTB budgets are lifted on both servers (bench/unlimit_budgets.py)
# so that every request is a bid.
#
# Settings (environment): SERVER_CPU=1 LOAD_CPU=0 CONNECTIONS=16 TARGET=decide
# PORT_A=18095 PORT_B=18096. Needs wrk, taskset, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

OLD=${1:?usage: scripts/bench-ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [SECONDS]}
NEW=${2:?usage: scripts/bench-ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [SECONDS]}
ROUNDS=${3:-5}
SECS=${4:-5}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
CONNECTIONS=${CONNECTIONS:-16}
TARGET=${TARGET:-decide}
case "$TARGET" in
    decide) LUA=bench/wrk/decide.lua; SAMPLE= ;;
    bid-banner) LUA=bench/wrk/bid.lua; SAMPLE=crates/openrtb/testdata/banner_site.json ;;
    bid-video) LUA=bench/wrk/bid.lua; SAMPLE=crates/openrtb/testdata/video_app.json ;;
    *) echo "bench-ab: TARGET must be decide, bid-banner or bid-video" >&2; exit 2 ;;
esac
ADMIN_KEY=bench-ab-admin-key-0123456789
PORT_A=${PORT_A:-18095}
PORT_B=${PORT_B:-18096}

for tool in wrk taskset curl; do
    command -v "$tool" >/dev/null || { echo "bench-ab: $tool is not installed" >&2; exit 1; }
done
for bin in "$OLD" "$NEW"; do
    [[ -x "$bin" ]] || { echo "bench-ab: $bin is not an executable" >&2; exit 1; }
done

WORK=$(mktemp -d)
PIDS=()
stop() {
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap 'stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# The bid request body for wrk (as bench-http.sh): the sample, compact, with __ID__ and __UID__.
if [[ -n "$SAMPLE" ]]; then
    python3 bench/bid_body.py "$SAMPLE" "$WORK/bid-body.json"
    export BID_BODY_FILE=$WORK/bid-body.json
fi

start() {
    local bin=$1 port=$2
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
        echo "bench-ab: something already listens on 127.0.0.1:$port" >&2
        exit 1
    fi
    # Each server in a session of its own (setsid), so in its own autogroup: the scheduler then
    # shares the core between the two servers, not between their threads, and work on a
    # server's event-log writer thread counts against that server (without it, one server's
    # writer work was shared by both and hid in the ratio).
    setsid env ADP_SERVER_THREADS=1 ADP_LOG_LEVEL=warn ADP_EVENTS_FSYNC=never ADP_ADMIN_KEY="$ADMIN_KEY" \
        taskset -c "$SERVER_CPU" "$bin" serve --demo --listen "127.0.0.1:$port" --data-dir "$WORK/data-$port" \
        >"$WORK/server-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/readyz"; then
            [[ -z "$SAMPLE" ]] || python3 bench/unlimit_budgets.py "http://127.0.0.1:$port" "$ADMIN_KEY"
            return 0
        fi
        sleep 0.1
    done
    echo "bench-ab: $bin did not come up on port $port; its log:" >&2
    cat "$WORK/server-$port.log" >&2
    exit 1
}

# load SECONDS OUT_OLD OUT_NEW PORT_OLD PORT_NEW: both wrk runs at once.
load() {
    taskset -c "$LOAD_CPU" wrk -t1 "-c$CONNECTIONS" "-d$1s" -s "$LUA" "http://127.0.0.1:$4" >"$2" &
    local w=$!
    taskset -c "$LOAD_CPU" wrk -t1 "-c$CONNECTIONS" "-d$1s" -s "$LUA" "http://127.0.0.1:$5" >"$3"
    wait "$w"
}

rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }

echo "bench-ab: $NEW against $OLD, $ROUNDS rounds of ${SECS}s, both on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU"
: >"$WORK/ratios"
for round in $(seq 1 "$ROUNDS"); do
    if ((round % 2)); then p_old=$PORT_A p_new=$PORT_B; else p_old=$PORT_B p_new=$PORT_A; fi
    start "$OLD" "$p_old"
    start "$NEW" "$p_new"
    [[ -z "$SAMPLE" ]] || sleep 0.5 # the snapshot rebuild after the budget change
    load 2 "$WORK/warm-old" "$WORK/warm-new" "$p_old" "$p_new"
    load "$SECS" "$WORK/old" "$WORK/new" "$p_old" "$p_new"
    stop
    old=$(rps "$WORK/old")
    new=$(rps "$WORK/new")
    awk -v r="$round" -v o="$old" -v n="$new" \
        'BEGIN { printf "round %d: old %.0f req/s, new %.0f req/s, new/old %.3f\n", r, o, n, n / o }'
    awk -v o="$old" -v n="$new" 'BEGIN { printf "%.4f\n", n / o }' >>"$WORK/ratios"
done
sort -n "$WORK/ratios" | awk '{ r[NR] = $1 } END { printf "median new/old: %.3f\n", (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }'
