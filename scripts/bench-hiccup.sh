#!/usr/bin/env bash
# bench-hiccup.sh: stalls of each CPU of this machine, alone and with both CPUs busy
# (crates/loadgen/examples/hiccup.rs: a pinned busy thread reporting every gap > 2 ms between two
# clock reads). A fixed-rate latency benchmark (scripts/bench-bid-latency.sh) counts each request
# from its intended send time, so a stall of the load generator's or the server's CPU shows up in
# its tail, lengthened by the backlog the server drains afterwards (longer the busier it is).
#
# Usage: scripts/bench-hiccup.sh   Settings: SECONDS_EACH=10 SKIP_BUILD=0
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-10}
TARGET=${CARGO_TARGET_DIR:-target}
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p adp-loadgen --example hiccup >&2
fi
BIN=$TARGET/release/examples/hiccup
summary() { tail -n 1; }

echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ); load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo
for cpu in 0 1; do
    echo "- CPU $cpu alone: $(taskset -c "$cpu" "$BIN" "$SECONDS_EACH" | summary)"
done
out0=$(mktemp)
taskset -c 0 "$BIN" "$SECONDS_EACH" >"$out0" &
both1=$(taskset -c 1 "$BIN" "$SECONDS_EACH" | summary)
wait
echo "- both busy, CPU 0: $(summary <"$out0")"
echo "- both busy, CPU 1: $both1"
rm -f "$out0"
