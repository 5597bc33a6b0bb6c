#!/usr/bin/env bash
# bench-bid-latency.sh: the bidder's latency at ~70% of its maximum, at a fixed arrival rate.
#
# wrk has no fixed-rate mode (scripts/bench-http.sh approximates one with think time), so this
# uses the load generator's open-loop mode: requests are due at a constant rate and latency is
# counted from the moment each was due, so a stall also counts against the requests queued
# behind it (no coordinated omission). Scenario: bench/scenarios/rtb-banner.toml (one 300x250
# banner imp per request, no notices).
#
#   1. `adplatform serve --demo`, one serving thread, all its threads pinned to SERVER_CPU;
#      the load generator pinned to LOAD_CPU;
#   2. closed loop (CONNECTIONS connections, DURATION): the maximum bid rate;
#   3. open loop at LOAD_PCT% of that rate, RUNS times;
#   4. the same open-loop runs against the bare hyper server (crates/server/examples/
#      baseline_hyper.rs) at the same rate: what this machine and generator add by themselves.
#
# Prints a Markdown report. Settings (environment): SERVER_CPU=1 LOAD_CPU=0 DURATION=10s
# CONNECTIONS=32 OPEN_CONNECTIONS=64 LOAD_PCT=70 RUNS=3 PORT=18094 BASELINE_PORT=18095 SKIP_BUILD=0
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
OPEN_CONNECTIONS=${OPEN_CONNECTIONS:-64}
LOAD_PCT=${LOAD_PCT:-70}
RUNS=${RUNS:-3}
PORT=${PORT:-18094}
BASELINE_PORT=${BASELINE_PORT:-18095}
SCENARIO=bench/scenarios/rtb-banner.toml
BIN=target/release/adplatform

log() { echo "bench-bid-latency: $*" >&2; }
for tool in cargo taskset curl python3; do
    command -v "$tool" >/dev/null || { log "$tool is not installed"; exit 1; }
done

work=$(mktemp -d)
pid=
stop() {
    if [[ -n "$pid" ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
    fi
}
trap 'stop; rm -rf "$work"' EXIT

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building release binaries (SKIP_BUILD=1 uses the ones in target/release)"
    cargo build --release -p adplatform >&2
    cargo build --release -p adp-server --example baseline_hyper >&2
fi

wait_up() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    log "$1 did not come up"
    exit 1
}

# loadtest NAME PORT ARGS...: one run; its JSON report goes to $work/NAME.json.
loadtest() {
    local name=$1 port=$2
    shift 2
    taskset -c "$LOAD_CPU" "$BIN" loadtest --target "http://127.0.0.1:$port" --scenario "$SCENARIO" \
        --cpus "$LOAD_CPU" --duration "$DURATION" --quiet --report-json "$work/$name.json" "$@" >/dev/null
}

log "adplatform serve --demo on CPU $SERVER_CPU"
env ADP_SERVER_THREADS=1 ADP_LOG_LEVEL=warn ADP_EVENTS_FSYNC=never ADP_ADMIN_KEY=bench-bid-latency-admin-key-0123 \
    taskset -c "$SERVER_CPU" "$BIN" serve --demo --listen "127.0.0.1:$PORT" --data-dir "$work/data" \
    >"$work/server.log" 2>&1 &
pid=$!
wait_up "http://127.0.0.1:$PORT/readyz"
# Bids, not no-bids: lift the demo's RTB budgets (bench/unlimit_budgets.py).
python3 bench/unlimit_budgets.py "http://127.0.0.1:$PORT" bench-bid-latency-admin-key-0123
sleep 0.5
log "closed loop: the maximum"
loadtest max "$PORT" --connections "$CONNECTIONS"
rate=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(int(r["throughput_rps"] * int(sys.argv[2]) / 100))' \
    "$work/max.json" "$LOAD_PCT")
for i in $(seq 1 "$RUNS"); do
    log "open loop at $rate req/s ($i/$RUNS)"
    loadtest "bid-$i" "$PORT" --mode open --rate "$rate" --connections "$OPEN_CONNECTIONS"
done
stop

log "baseline_hyper on CPU $SERVER_CPU"
taskset -c "$SERVER_CPU" target/release/examples/baseline_hyper "127.0.0.1:$BASELINE_PORT" 1200 >"$work/baseline.log" 2>&1 &
pid=$!
wait_up "http://127.0.0.1:$BASELINE_PORT/"
for i in $(seq 1 "$RUNS"); do
    log "baseline open loop at $rate req/s ($i/$RUNS)"
    loadtest "baseline-$i" "$BASELINE_PORT" --mode open --rate "$rate" --connections "$OPEN_CONNECTIONS"
done
stop

python3 - "$work" "$RUNS" "$rate" "$LOAD_PCT" "$SERVER_CPU" "$LOAD_CPU" "$DURATION" <<'PY'
import json, subprocess, sys
work, runs, rate, pct, scpu, lcpu, dur = sys.argv[1:]
def load(n): return json.load(open(f"{work}/{n}.json"))
mx = load("max")
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p' | head -1"], capture_output=True, text=True).stdout.strip()
print(f"Bidder latency at a fixed rate (`scripts/bench-bid-latency.sh`), {cpu}; server on CPU {scpu}, load generator on CPU {lcpu}, {dur} per run.")
print()
print(f"Closed-loop maximum: **{mx['throughput_rps']:.0f} bid requests/s**; open loop at {pct}% = {rate} req/s, latency from the intended send time (µs):")
print()
print("| server | run | req/s | bid rate | p50 | p90 | p99 | p99.9 | max |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for who in ("bid", "baseline"):
    for i in range(1, int(runs) + 1):
        r = load(f"{who}-{i}")
        l = r["latency"]
        name = "adplatform /openrtb2/bid" if who == "bid" else "baseline_hyper (fixed answer)"
        bids = f"{r['bid_rate'] * 100:.1f}%" if who == "bid" else "-"
        if who == "bid" and r["bid_rate"] < 0.99:
            sys.exit(f"bench-bid-latency: run {i} got bids for only {r['bid_rate']:.1%} of its requests")
        print(f"| {name} | {i} | {r['throughput_rps']:.0f} | {bids} | {l['p50_us']} | {l['p90_us']} | {l['p99_us']} | {l['p999_us']} | {l['max_us']} |")
PY
