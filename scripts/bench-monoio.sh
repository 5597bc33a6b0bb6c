#!/usr/bin/env bash
# bench-monoio.sh: is monoio (io_uring, thread-per-core) faster than hyper on tokio here?
# Issue 3 says to adopt glommio or monoio only if it measures ≥ 15% faster. Runs the bare hyper
# baseline (crates/server/examples/baseline_hyper.rs, tokio current-thread) and the three modes of
# bench/monoio-probe (hyper over monoio poll-io, hyper over monoio-compat completion I/O, and
# httparse over completion I/O without hyper) under the same wrk command, each server alone and
# pinned to SERVER_CPU, wrk pinned to LOAD_CPU, alternating ROUNDS times. Prints a Markdown table:
# requests/s and requests per server CPU-second (from /proc), and each as a ratio to the baseline
# of the same round.
#
# Usage: scripts/bench-monoio.sh   Settings: ROUNDS=2 DURATION=5 BODY=2284 CONNECTIONS=32
#        SERVER_CPU=1 LOAD_CPU=0 PORT=18097
# Needs: cargo, wrk, taskset, curl; a kernel with io_uring enabled.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-5}
BODY=${BODY:-2284}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PORT=${PORT:-18097}
TARGET=${CARGO_TARGET_DIR:-target}
PROBE_TARGET=${PROBE_TARGET_DIR:-$TARGET/monoio-probe}

for tool in cargo wrk taskset curl; do
    command -v "$tool" >/dev/null || { echo "bench-monoio: $tool is not installed" >&2; exit 1; }
done
log() { echo "bench-monoio: $*" >&2; }

log "building the baseline and the probe (release)"
cargo build --release -p adp-server --example baseline_hyper >&2
(cd bench/monoio-probe && CARGO_TARGET_DIR=$PROBE_TARGET cargo build --release --locked >&2)
BASELINE=$TARGET/release/examples/baseline_hyper
PROBE=$PROBE_TARGET/release/monoio-probe

# shellcheck source=scripts/bench-pinned.sh
. scripts/bench-pinned.sh

# run CMD...: prints "rps per-cpu-second"
run() {
    local rps cpu
    read -r rps cpu < <(pinned_run "$@")
    awk -v r="$rps" -v c="$cpu" -v d="$DURATION" 'BEGIN{printf "%.0f %.0f\n", r, (c > 0 ? r * d / c : 0)}'
}

pinned_machine
echo "Load: \`taskset -c $LOAD_CPU wrk -t1 -c$CONNECTIONS -d${DURATION}s -s bench/wrk/decide.lua\`; each server alone on CPU $SERVER_CPU; body $BODY bytes."
echo
echo "| round | server | req/s | req per server CPU-s | ratio (req/s) | ratio (per CPU-s) |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    read -r base_rps base_cpu < <(run "$BASELINE" "127.0.0.1:$PORT" "$BODY")
    echo "| $round | hyper on tokio (baseline) | $base_rps | $base_cpu | 1.00 | 1.00 |"
    for mode in hyper-poll hyper-compat raw; do
        read -r rps cpu < <(run "$PROBE" "$mode" "127.0.0.1:$PORT" "$BODY")
        awk -v m="$mode" -v r="$round" -v a="$rps" -v b="$cpu" -v ba="$base_rps" -v bb="$base_cpu" \
            'BEGIN{printf "| %s | monoio %s | %s | %s | %.2f | %.2f |\n", r, m, a, b, a / ba, b / bb}'
    done
done
