#!/usr/bin/env bash
# bench-http.sh: HTTP throughput of `POST /v1/decide` (or `POST /openrtb2/bid`) on
# `adplatform serve --demo` against a bare hyper server (crates/server/examples/baseline_hyper.rs)
# that answers a fixed body of the same size as the real answer.
#
# Usage: scripts/bench-http.sh                    # decide; a Markdown report for BENCHMARKS.md on stdout
#        TARGET=bid-banner scripts/bench-http.sh  # OpenRTB: the ~2.4 KB banner site request
#        TARGET=bid-video scripts/bench-http.sh   # OpenRTB: the ~2.3 KB video app request
#   (bid requests are crates/openrtb/testdata/{banner_site,video_app}.json, compacted, with a new
#   request id and user id per request: bench/wrk/bid.lua)
#
# Each server runs alone, pinned to SERVER_CPU with one serving thread; wrk runs pinned to LOAD_CPU
# with the same command against both (bench/wrk/decide.lua: one demo-mrec placement, a new user id
# per request). Two passes per server:
#   max  closed loop, CONNECTIONS connections flat out: throughput and latency at saturation;
#   NN%  open-ish loop at about LOAD_PCT% of that server's max: wrk has no fixed rate (-R is wrk2),
#        so each connection waits a random think time (mean THINK_MS, via decide.lua's delay()) and
#        the connection count is chosen so that connections / (think + service time) ≈ the target.
#        The achieved rate is reported; latency is measured from send, without the think time.
# Then ROUNDS-1 more max passes of each, alternating (baseline, then decide on a fresh data dir):
# this machine's speed drifts by ±10% within minutes, so the ratio reported is the median of the
# rounds' ratios, each round's two servers measured back to back.
# Server CPU is read from /proc (all the server's threads, all pinned to SERVER_CPU); wrk CPU from
# /usr/bin/time when installed. A load generator near 100% CPU means the server was not saturated.
#
# Needs: cargo, wrk, taskset, curl. Settings (environment): DURATION=10s WARMUP=3s CONNECTIONS=32
# LOAD_PCT=70 THINK_MS=10 SERVER_CPU=1 LOAD_CPU=0 DECIDE_PORT=18080 BASELINE_PORT=18081 ROUNDS=3 SKIP_BUILD=0
# SERVER_BIN=target/release/adplatform BASELINE_BIN=target/release/examples/baseline_hyper (e.g. the
# PGO builds of scripts/build-pgo.sh: target/pgo/build/release/adplatform and, with BASELINE=1,
# target/pgo/build/release/examples/baseline_hyper)
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-32}
LOAD_PCT=${LOAD_PCT:-70}
THINK_MS=${THINK_MS:-10}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
DECIDE_PORT=${DECIDE_PORT:-18080}
BASELINE_PORT=${BASELINE_PORT:-18081}
TARGET=${TARGET:-decide}
ROUNDS=${ROUNDS:-3}
SERVER_BIN=${SERVER_BIN:-target/release/adplatform}
BASELINE_BIN=${BASELINE_BIN:-target/release/examples/baseline_hyper}
case "$TARGET" in
    decide) SCRIPT=bench/wrk/decide.lua; SAMPLE= ;;
    bid-banner) SCRIPT=bench/wrk/bid.lua; SAMPLE=crates/openrtb/testdata/banner_site.json ;;
    bid-video) SCRIPT=bench/wrk/bid.lua; SAMPLE=crates/openrtb/testdata/video_app.json ;;
    *) echo "bench-http: TARGET must be decide, bid-banner or bid-video" >&2; exit 2 ;;
esac
ADMIN_KEY=bench-http-admin-key-0123456789

for tool in cargo wrk taskset curl python3; do
    command -v "$tool" >/dev/null || { echo "bench-http: $tool is not installed (wrk: apt-get install -y wrk)" >&2; exit 1; }
done
TIME=()
[[ -x /usr/bin/time ]] && TIME=(/usr/bin/time -f '%P' -o)

WORK=$(mktemp -d)
SERVER_PID=
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench-http: $*" >&2; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building release binaries (SKIP_BUILD=1 uses the ones in target/release)"
    cargo build --release -p adplatform >&2
    cargo build --release -p adp-server --example baseline_hyper >&2
fi

# Waits until URL answers (any HTTP status) or the server process is gone.
wait_up() {
    local url=$1
    for _ in $(seq 1 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || { log "server exited; its log:"; cat "$WORK/server.log" >&2; exit 1; }
        curl -s -o /dev/null "$url" && return 0
        sleep 0.1
    done
    log "server did not come up at $url"
    exit 1
}

port_free() {
    if curl -s -o /dev/null "http://127.0.0.1:$1/"; then
        log "something already listens on 127.0.0.1:$1"
        exit 1
    fi
}

start_decide() {
    port_free "$DECIDE_PORT"
    env ADP_SERVER_THREADS=1 ADP_LOG_LEVEL=warn ADP_EVENTS_FSYNC=never ADP_ADMIN_KEY="$ADMIN_KEY" \
        taskset -c "$SERVER_CPU" "$SERVER_BIN" serve --demo \
        --listen "127.0.0.1:$DECIDE_PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    wait_up "http://127.0.0.1:$DECIDE_PORT/readyz"
}

start_baseline() {
    port_free "$BASELINE_PORT"
    taskset -c "$SERVER_CPU" "$BASELINE_BIN" "127.0.0.1:$BASELINE_PORT" "$1" \
        >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    wait_up "http://127.0.0.1:$BASELINE_PORT/"
}

# The bid benchmarks measure bids, not no-bids: every bid reserves its price against the line
# item's and campaign's budgets until its notices come (none come here), so on the demo's
# budgets a run would turn into cheap 204s after ~400k bids. Lifts the budgets of the demo's
# RTB line items and their campaigns on the benchmark server (through the management API).
unlimit_budgets() {
    python3 bench/unlimit_budgets.py "$1" "$ADMIN_KEY"
}

# The bid request body for wrk: the sample, compact, with __ID__ and __UID__ placeholders.
if [[ -n "$SAMPLE" ]]; then
    python3 bench/bid_body.py "$SAMPLE" "$WORK/bid-body.json"
    export BID_BODY_FILE=$WORK/bid-body.json
fi

# One request as wrk sends it: must be a 200 with a filled ad (a bid). Prints the body size.
smoke() {
    local url=$1 out=$WORK/smoke.json code path body
    if [[ -n "$SAMPLE" ]]; then
        path=/openrtb2/bid
        body=$(sed 's/__ID__/smoke/; s/__UID__/u-smoke/' "$BID_BODY_FILE")
    else
        path=/v1/decide
        body='{"placements":[{"id":"demo-mrec"}],"user":{"id":"u-smoke"}}'
    fi
    code=$(curl -s -o "$out" -w '%{http_code}' -H 'Content-Type: application/json' -d "$body" "$url$path")
    if [[ "$code" != 200 ]]; then
        log "POST $url$path answered $code: $(head -c 300 "$out")"
        exit 1
    fi
    wc -c <"$out" | tr -d ' '
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }

# run NAME PASS URL CONNECTIONS [THINK_MS]: one wrk run; appends a row to $WORK/rows.
run() {
    local name=$1 pass=$2 url=$3 conns=$4 think=${5:-}
    local out=$WORK/wrk-$name-$pass.txt args=() t0 t1 c0 c1
    [[ -n "$think" ]] && args=(-- "$think")
    local cmd=(taskset -c "$LOAD_CPU" wrk -t1 "-c$conns" "-d$DURATION" --latency -s "$SCRIPT" "$url" ${args[@]+"${args[@]}"})
    echo "${cmd[*]}" >>"$WORK/commands"
    log "$name/$pass: ${cmd[*]}"
    c0=$(cpu_ticks)
    t0=$(date +%s.%N)
    if ((${#TIME[@]})); then
        "${TIME[@]}" "$WORK/wrk-cpu" "${cmd[@]}" >"$out"
    else
        "${cmd[@]}" >"$out"
    fi
    t1=$(date +%s.%N)
    c1=$(cpu_ticks)
    cat "$out" >&2
    local wrk_cpu=n/a
    [[ -s "$WORK/wrk-cpu" ]] && wrk_cpu=$(tail -n1 "$WORK/wrk-cpu")
    awk -v name="$name" -v pass="$pass" -v conns="$conns" -v think="${think:--}" \
        -v ticks="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v secs="$(echo "$t1 $t0" | awk '{ print $1 - $2 }')" \
        -v wrk_cpu="$wrk_cpu" '
        /^ +Latency +[0-9]/ { avg = $2; max = $4 }
        /^ +50%/ { p50 = $2 } /^ +90%/ { p90 = $2 } /^ +99%/ { p99 = $2 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { sub(/^ *Socket errors: */, ""); gsub(/,/, ""); errs = $0 }
        END {
            cpu = ticks / hz / secs * 100
            printf "%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%.0f%%\t%s\t%.0f\n", name, pass, conns, think, rps,
                avg, p50, p90, p99, max, non2xx, (errs == "" ? "none" : errs), cpu, wrk_cpu, rps / (cpu / 100)
        }' "$out" >>"$WORK/rows"
    rm -f "$WORK/wrk-cpu"
}

max_rps() { awk -F'\t' -v n="$1" '$1 == n && $2 == "max" { print $5 }' "$WORK/rows"; }

# bench NAME URL: warm-up, the max pass, then the LOAD_PCT% pass.
bench() {
    local name=$1 url=$2 rps conns
    log "$name: warm-up $WARMUP"
    taskset -c "$LOAD_CPU" wrk -t1 "-c$CONNECTIONS" "-d$WARMUP" -s "$SCRIPT" "$url" >/dev/null
    run "$name" max "$url" "$CONNECTIONS"
    rps=$(max_rps "$name")
    # connections = target rate × (think time + service time at max)
    conns=$(awk -v r="$rps" -v p="$LOAD_PCT" -v d="$THINK_MS" 'BEGIN {
        c = r * p / 100 * (d / 1000 + 1 / r); c = int(c + 0.5); print (c < 1 ? 1 : c) }')
    run "$name" "~${LOAD_PCT}%" "$url" "$conns" "$THINK_MS"
}

: >"$WORK/rows"
: >"$WORK/commands"

start_decide
decide_url=http://127.0.0.1:$DECIDE_PORT
if [[ -n "$SAMPLE" ]]; then
    unlimit_budgets "$decide_url"
    sleep 0.5 # the snapshot rebuild after the catalog change
fi
decide_bytes=$(smoke "$decide_url")
bench decide "$decide_url"
stats=$(curl -s -H "Authorization: Bearer $ADMIN_KEY" "$decide_url/api/v1/serving/stats")
stop_server
if [[ -n "$SAMPLE" ]]; then
    # A bid benchmark whose requests ended in no-bids measured something cheaper than bidding.
    python3 - "$stats" <<'PY' || exit 1
import json, sys
s = json.loads(sys.argv[1])
req, bids = s["bid_requests"], s["bids"]
if req == 0 or bids < 0.99 * req:
    sys.exit(f"bench-http: only {bids} bids for {req} bid requests: the run measured no-bids")
PY
fi

start_baseline "$decide_bytes"
baseline_url=http://127.0.0.1:$BASELINE_PORT
baseline_bytes=$(smoke "$baseline_url")
bench baseline "$baseline_url"
stop_server

# More alternating max passes (see the top): baseline, then decide on a fresh data dir.
for round in $(seq 2 "$ROUNDS"); do
    start_baseline "$decide_bytes"
    taskset -c "$LOAD_CPU" wrk -t1 "-c$CONNECTIONS" "-d$WARMUP" -s "$SCRIPT" "$baseline_url" >/dev/null
    run baseline "max#$round" "$baseline_url" "$CONNECTIONS"
    stop_server
    rm -rf "$WORK/data"
    start_decide
    if [[ -n "$SAMPLE" ]]; then
        unlimit_budgets "$decide_url"
        sleep 0.5
    fi
    taskset -c "$LOAD_CPU" wrk -t1 "-c$CONNECTIONS" "-d$WARMUP" -s "$SCRIPT" "$decide_url" >/dev/null
    run decide "max#$round" "$decide_url" "$CONNECTIONS"
    stop_server
done

d=$(max_rps decide)
b=$(max_rps baseline)
ratio1=$(awk -v d="$d" -v b="$b" 'BEGIN { printf "%.3f", d / b }')
# per_round COLUMN: each round's ratio of a column (5: req/s, 15: requests per second of the
# server's CPU time), decide over the baseline measured next to it.
per_round() {
    awk -F'\t' -v c="$1" '$2 ~ /^max/ { r = ($2 == "max") ? 1 : substr($2, 5); v[$1, r] = $c; n = (r > n) ? r : n }
        END { for (i = 1; i <= n; i++) if (v["baseline", i] > 0) printf "%.3f ", v["decide", i] / v["baseline", i] }' "$WORK/rows"
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : sprintf("%.3f", (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
round_ratios=$(per_round 5)
ratio=$(median "$round_ratios")
dn=$(awk -F'\t' '$1 == "decide" && $2 == "max" { print $15 }' "$WORK/rows")
bn=$(awk -F'\t' '$1 == "baseline" && $2 == "max" { print $15 }' "$WORK/rows")
ratio_cpu=$(awk -v d="$dn" -v b="$bn" 'BEGIN { printf "%.3f", d / b }')
round_ratios_cpu=$(per_round 15)
ratio_cpu_median=$(median "$round_ratios_cpu")

cat <<EOF
### HTTP $TARGET throughput vs a bare hyper server

- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)
- machine: $(nproc) CPUs, $(lscpu | grep "Model name" | sed 's/^Model name: *//'), Linux $(uname -r)
- server pinned to CPU $SERVER_CPU (one serving thread; every server thread on that CPU), wrk pinned to CPU $LOAD_CPU
- $TARGET (rows named decide): \`adplatform serve --demo\`, ADP_SERVER_THREADS=1 ADP_LOG_LEVEL=warn ADP_EVENTS_FSYNC=never, fresh data dir; response $decide_bytes bytes
- baseline: \`baseline_hyper\` (hyper 1, HTTP/1.1, current_thread runtime), fixed JSON body of $baseline_bytes bytes
- load: \`$SCRIPT\` (${SAMPLE:-one placement demo-mrec}; new request and user id per request); $WARMUP warm-up (not shown) before each server's passes
- rounds: $ROUNDS max passes of each server, alternating (\`max\` is the first, \`max#N\` the later ones; "of max" is of the first)
- ${LOAD_PCT}% pass: ~${LOAD_PCT}% of that server's own max via a ${THINK_MS} ms mean think time per connection (wrk has no fixed-rate mode)

| server | pass | conns | think ms | req/s | of max | lat avg | p50 | p90 | p99 | max | non-2xx | socket errors | server CPU | wrk CPU | req/s per server core |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|
$(awk -F'\t' -v OFS=' | ' 'NR == FNR { if ($2 == "max") top[$1] = $5; next }
    { $5 = $5 " | " sprintf("%.0f%%", $5 / top[$1] * 100); $1 = $1; print "| " $0 " |" }' "$WORK/rows" "$WORK/rows")

**decide / baseline at max: $ratio** (req/s; median of the rounds' ratios $round_ratios; first round $ratio1, per server-CPU-second $ratio_cpu).
Per server CPU-second: median $ratio_cpu_median (rounds $round_ratios_cpu).

decide serving stats after its passes: \`$stats\`

Commands:

\`\`\`
$(cat "$WORK/commands")
\`\`\`
EOF
