#!/usr/bin/env bash
# bench-pipeline.sh: the event pipeline's numbers (issue 6), on the services scripts/services.sh
# starts (Tansu for the Kafka API, ClickHouse 18.16):
#   1. producer events/s on one core: events in memory → eventwire → idempotent lz4 producer,
#      every delivery confirmed; and the deployed path, local log → KafkaForwarder → broker
#      (crates/events/examples/kafka_throughput.rs), pinned to PRODUCER_CPU;
#   2. ingest rows/s into ClickHouse: Kafka → `adplatform ingest`'s sink → ClickHouse, and the
#      sink alone (crates/analytics/examples/ingest_bench.rs);
#   3. end-to-end lag at a steady load: `serve --demo` forwarding to Kafka, `adplatform ingest`,
#      the loadtest in open mode at LAG_RATE requests/s; every 200 ms the newest event time in
#      ClickHouse is compared with the clock (lag = how old the freshest visible event is).
# The results replace the part of BENCHMARKS.md between the `bench-pipeline.sh` markers.
#
# Usage: scripts/bench-pipeline.sh
# Settings: PRODUCER_CPU=1 EVENTS=1000000 INGEST_ROWS=2000000 INGEST_BATCH=500000 LAG_RATE=2000 LAG_SECS=30
set -euo pipefail
cd "$(dirname "$0")/.."

PRODUCER_CPU=${PRODUCER_CPU:-1}
EVENTS=${EVENTS:-1000000}
INGEST_ROWS=${INGEST_ROWS:-2000000}
# Rows per batch: clickhouse.batch_rows's default.
INGEST_BATCH=${INGEST_BATCH:-500000}
LAG_RATE=${LAG_RATE:-2000}
LAG_SECS=${LAG_SECS:-30}
PORT=18395
ADMIN_KEY=bench-pipeline-admin-key-0123456789

log() { printf '[bench-pipeline] %s\n' "$*" >&2; }
for tool in cargo taskset curl python3; do
    command -v "$tool" >/dev/null || { echo "bench-pipeline: $tool is not installed" >&2; exit 1; }
done

scripts/services.sh start >&2
# shellcheck disable=SC1091
. /var/tmp/adplatform-services/env
TARGET=${CARGO_TARGET_DIR:-target}

log "building (release)"
cargo build --release --locked -p adplatform -p adp-events --example kafka_throughput >&2
cargo build --release --locked -p adp-analytics --features testkit --example ingest_bench >&2

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

out="$work/report.md"
{
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%dT%H:%MZ)."
    echo "Broker: Tansu (memory storage) on loopback; ClickHouse 18.16 on loopback; both share the machine."
    echo
} >"$out"

log "1. producer throughput"
for mode in producer forwarder; do
    line=$(taskset -c "$PRODUCER_CPU" "$TARGET/release/examples/kafka_throughput" "$ADP_TEST_KAFKA" "$EVENTS" "$mode" 2>&1 | tail -1)
    echo "- producer ($mode), one core (\`taskset -c $PRODUCER_CPU $TARGET/release/examples/kafka_throughput $ADP_TEST_KAFKA $EVENTS $mode\`): $line" >>"$out"
done

log "2. ingest throughput"
ingest_out=$(ADP_TEST_CLICKHOUSE=$ADP_TEST_CLICKHOUSE "$TARGET/release/examples/ingest_bench" "$INGEST_ROWS" "$INGEST_BATCH" 2>&1 | grep -E "rows/s" || true)
{
    echo "- ingest (\`$TARGET/release/examples/ingest_bench $INGEST_ROWS $INGEST_BATCH\`):"
    while IFS= read -r l; do echo "  - $l"; done <<<"$ingest_out"
} >>"$out"

log "3. end-to-end lag at $LAG_RATE req/s"
prefix="adplag$$"
export ADP_KAFKA_BROKERS=$ADP_TEST_KAFKA ADP_KAFKA_TOPIC_PREFIX=$prefix
export ADP_CLICKHOUSE_URL=$ADP_TEST_CLICKHOUSE ADP_CLICKHOUSE_DATABASE=$prefix ADP_CLICKHOUSE_BATCH_MS=200
export ADP_LOG_LEVEL=warn ADP_EVENTS_FSYNC=never
"$TARGET/release/adplatform" migrate --clickhouse >&2
ADP_SERVER_THREADS=1 taskset -c 1 "$TARGET/release/adplatform" serve --demo --admin-key "$ADMIN_KEY" \
    --listen "127.0.0.1:$PORT" --data-dir "$work/data" >"$work/serve.log" 2>&1 &
pids+=($!)
taskset -c 0 "$TARGET/release/adplatform" ingest >"$work/ingest.log" 2>&1 &
pids+=($!)
until curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; do sleep 0.2; done
# The consumer group's first join takes a while on Tansu: wait for the first rows.
taskset -c 0 "$TARGET/release/adplatform" loadtest --target "http://127.0.0.1:$PORT" \
    --scenario bench/scenarios/direct-web.toml --duration "$((LAG_SECS + 60))s" --mode open --rate "$LAG_RATE" \
    --no-progress --report-json "$work/lag-load.json" >"$work/load.log" 2>&1 &
load_pid=$!
pids+=("$load_pid")
python3 - "$ADP_TEST_CLICKHOUSE" "$prefix" "$LAG_SECS" >>"$out" <<'PY'
import sys, time, urllib.request, urllib.parse
url, db, secs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def q(sql):
    with urllib.request.urlopen(url + "/?" + urllib.parse.urlencode({"query": sql}), timeout=5) as r:
        return r.read().decode().strip()
deadline = time.time() + 90
while time.time() < deadline and q(f"SELECT count() FROM {db}.events") in ("", "0"):
    time.sleep(0.5)
time.sleep(5)  # steady state
samples = []
end = time.time() + secs
while time.time() < end:
    newest = int(q(f"SELECT max(event_time_ms) FROM {db}.events") or 0)
    samples.append(time.time() * 1000 - newest)
    time.sleep(0.2)
samples.sort()
pick = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]
rows = q(f"SELECT count() FROM {db}.events")
print(f"- end-to-end lag (serve → local log → Kafka → ingest → ClickHouse; {len(samples)} samples over {secs} s "
      f"at a steady open-loop load; lag = now − newest event time visible in ClickHouse): "
      f"p50 {pick(0.5):.0f} ms, p99 {pick(0.99):.0f} ms, max {samples[-1]:.0f} ms ({rows} rows by the end)")
PY
kill "$load_pid" 2>/dev/null || true
echo "  (load: \`adplatform loadtest --scenario bench/scenarios/direct-web.toml --mode open --rate $LAG_RATE\`; ingest batch 200 ms)" >>"$out"

python3 bench/replace_section.py bench-pipeline.sh "Event pipeline (scripts/bench-pipeline.sh)" "$out"
cat "$out"
log "done: BENCHMARKS.md updated"
