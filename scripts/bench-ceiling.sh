#!/usr/bin/env bash
# bench-ceiling.sh: what handler work costs under the HTTP benchmark on this machine.
#
# scripts/bench-http.sh divides a server's throughput by a bare hyper server's. This script runs
# that bare server (crates/server/examples/baseline_hyper.rs) with a fixed amount of busy work
# per request (WORK_NS: 0, 1000, 2000, ...) under the same wrk command, server pinned to
# SERVER_CPU and wrk to LOAD_CPU, and reports for each: requests/s, server CPU per request (from
# /proc), the CPU per request beyond the busy work itself ("overhead"), and the throughput ratio
# to the no-work run. When the overhead grows with the work, a slower handler also pays more
# kernel time per request (here: waking a load generator that has gone idle), and the ratio
# falls faster than the work alone would explain. The ratio column is the ceiling a server
# with that much work per request can reach in bench-http.sh.
#
# Usage: scripts/bench-ceiling.sh   Settings: WORKS="0 500 1000 2000 3000 5000" ROUNDS=2
#        DURATION=5 BODY=2284 CONNECTIONS=32 SERVER_CPU=1 LOAD_CPU=0 PORT=18096 SKIP_BUILD=0
set -euo pipefail
cd "$(dirname "$0")/.."

WORKS=${WORKS:-"0 500 1000 2000 3000 5000"}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-5}
BODY=${BODY:-2284}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PORT=${PORT:-18096}
TARGET=${CARGO_TARGET_DIR:-target}

for tool in cargo wrk taskset curl; do
    command -v "$tool" >/dev/null || { echo "bench-ceiling: $tool is not installed" >&2; exit 1; }
done
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p adp-server --example baseline_hyper >&2
fi
BASELINE=$TARGET/release/examples/baseline_hyper
# shellcheck source=scripts/bench-pinned.sh
. scripts/bench-pinned.sh

# run WORK_NS: prints "rps cpu_us_per_request"
run() {
    local rps cpu
    read -r rps cpu < <(pinned_run "$BASELINE" "127.0.0.1:$PORT" "$BODY" "$1")
    awk -v r="$rps" -v c="$cpu" -v d="$DURATION" 'BEGIN{printf "%.0f %.2f\n", r, c / (r * d) * 1e6}'
}

pinned_machine
echo "Load: \`taskset -c $LOAD_CPU wrk -t1 -c$CONNECTIONS -d${DURATION}s -s bench/wrk/decide.lua\` against \`baseline_hyper ADDR $BODY WORK_NS\` on CPU $SERVER_CPU."
echo
echo "| round | work per request | req/s | server CPU per request | overhead beyond the work | ratio to no work |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    base=
    for work in $WORKS; do
        read -r rps cpu < <(run "$work")
        [[ -z "$base" ]] && base=$rps
        awk -v rd="$round" -v w="$work" -v r="$rps" -v c="$cpu" -v b="$base" \
            'BEGIN{printf "| %s | %.1f µs | %s | %.2f µs | %.2f µs | %.2f |\n", rd, w / 1000, r, c, c - w / 1000, r / b}'
    done
done
