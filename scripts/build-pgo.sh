#!/usr/bin/env bash
# build-pgo.sh: a profile-guided (PGO) release build of `adplatform`.
#
# Usage: scripts/build-pgo.sh              # -> target/pgo/build/release/adplatform
#        BASELINE=1 scripts/build-pgo.sh   # and the benchmark baseline, the same way:
#                                          #    target/pgo/build/release/examples/baseline_hyper
#
# 1. builds an instrumented release binary (rustc -Cprofile-generate) in target/pgo/instrumented;
# 2. trains it: `serve --demo` (RTB budgets lifted, as in the benchmarks) under the load
#    generator's own scenarios, not the benchmark bodies: bench/scenarios/rtb-mixed.toml
#    (banner/video/native bids from sites and apps, deals, win/billing/loss notices),
#    direct-web.toml and direct-app.toml (decisions, impression and click trackers), each for
#    TRAIN_SECONDS; then stops the server with SIGTERM, so that it writes its profile;
# 3. merges the raw profiles with llvm-profdata (LLVM_PROFDATA, or the newest
#    /usr/lib/llvm-*/bin/llvm-profdata; run as root on Debian it installs llvm-19 when there is
#    none — rustc's LLVM is newer, and llvm-profdata 19 reads its raw profiles);
# 4. builds the release binary again with -Cprofile-use in target/pgo/build.
# With BASELINE=1 the bare hyper server of scripts/bench-http.sh (baseline_hyper) gets the same
# treatment, trained under wrk for TRAIN_SECONDS (bench/wrk/bid.lua), so that a PGO bidder is
# compared with a PGO baseline (SERVER_BIN=... BASELINE_BIN=... scripts/bench-http.sh).
#
# Each build is a full release build (fat LTO) in its own target directory: 14–18 min each on
# this 2-core machine. The plain `cargo build --release` stays what the tests and CI's test stage
# build; this is for a production binary (scripts/build.sh --pgo, the Dockerfile's ARG PGO=1, the
# GitLab pipeline's images of release tags) and for the benchmarks that name it (BENCHMARKS.md).
# Settings (environment): TRAIN_SECONDS=20 PORT=18190 PGO_DIR=target/pgo LLVM_PROFDATA=
set -euo pipefail
cd "$(dirname "$0")/.."

TRAIN_SECONDS=${TRAIN_SECONDS:-20}
PORT=${PORT:-18190}
PGO_DIR=$(mkdir -p "${PGO_DIR:-target/pgo}" && cd "${PGO_DIR:-target/pgo}" && pwd)
ADMIN_KEY=build-pgo-admin-key-0123456789

# The newest llvm-profdata of the machine's LLVM packages (Debian installs them side by side).
newest_profdata() {
    local found=()
    for p in /usr/lib/llvm-*/bin/llvm-profdata; do [[ -x "$p" ]] && found+=("$p"); done
    ((${#found[@]})) && printf '%s\n' "${found[@]}" | sort -V | tail -n 1
    return 0
}
PROFDATA=${LLVM_PROFDATA:-$(newest_profdata)}
if [[ -z "$PROFDATA" && $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "== installing llvm-19 (llvm-profdata)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q llvm-19 >&2
    PROFDATA=$(newest_profdata)
fi
if [[ -z "$PROFDATA" || ! -x "$PROFDATA" ]]; then
    echo "build-pgo: no llvm-profdata found (Debian: apt-get install llvm-19, or set LLVM_PROFDATA)" >&2
    exit 1
fi
for tool in cargo curl python3; do
    command -v "$tool" >/dev/null || { echo "build-pgo: $tool is not installed" >&2; exit 1; }
done

RAW="$PGO_DIR/raw"
rm -rf "$RAW"
mkdir -p "$RAW"
echo "== instrumented build (target dir $PGO_DIR/instrumented)" >&2
CARGO_TARGET_DIR="$PGO_DIR/instrumented" RUSTFLAGS="-Cprofile-generate=$RAW" \
    cargo build --release --locked -p adplatform
if [[ "${BASELINE:-0}" == 1 ]]; then
    command -v wrk >/dev/null || { echo "build-pgo: BASELINE=1 needs wrk (apt-get install -y wrk)" >&2; exit 1; }
    CARGO_TARGET_DIR="$PGO_DIR/instrumented" RUSTFLAGS="-Cprofile-generate=$RAW/baseline" \
        cargo build --release --locked -p adp-server --example baseline_hyper
fi
BIN="$PGO_DIR/instrumented/release/adplatform"

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== training: serve --demo on 127.0.0.1:$PORT, ${TRAIN_SECONDS}s per scenario" >&2
# Every process of the instrumented binary writes its own raw profile (%p: its pid).
export LLVM_PROFILE_FILE="$RAW/adplatform-%p.profraw"
ADP_LOG_LEVEL=warn ADP_EVENTS_FSYNC=never ADP_ADMIN_KEY=$ADMIN_KEY \
    "$BIN" serve --demo --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/readyz" && break
    sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/readyz" || { cat "$WORK/server.log" >&2; exit 1; }
python3 bench/unlimit_budgets.py "http://127.0.0.1:$PORT" "$ADMIN_KEY"
for scenario in rtb-mixed direct-web direct-app; do
    "$BIN" loadtest --target "http://127.0.0.1:$PORT" --scenario "bench/scenarios/$scenario.toml" \
        --duration "${TRAIN_SECONDS}s" >"$WORK/$scenario.txt" 2>&1 \
        || { cat "$WORK/$scenario.txt" >&2; exit 1; }
    grep -i -m1 "requests" "$WORK/$scenario.txt" >&2 || true
done
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=
ls "$RAW"/*.profraw >/dev/null 2>&1 || { echo "build-pgo: the training wrote no profile" >&2; exit 1; }
"$PROFDATA" merge -o "$PGO_DIR/adplatform.profdata" "$RAW"/*.profraw
if [[ "${BASELINE:-0}" == 1 ]]; then
    echo "== training the baseline under wrk, ${TRAIN_SECONDS}s" >&2
    python3 bench/bid_body.py crates/openrtb/testdata/banner_site.json "$WORK/bid-body.json"
    LLVM_PROFILE_FILE="$RAW/baseline/baseline-%p.profraw" \
        "$PGO_DIR/instrumented/release/examples/baseline_hyper" "127.0.0.1:$PORT" >"$WORK/baseline.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
        sleep 0.1
    done
    BID_BODY_FILE="$WORK/bid-body.json" wrk -t1 -c32 -d"${TRAIN_SECONDS}s" -s bench/wrk/bid.lua "http://127.0.0.1:$PORT" \
        | grep Requests/sec >&2
    kill -INT "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
    ls "$RAW"/baseline/*.profraw >/dev/null 2>&1 || { echo "build-pgo: the baseline wrote no profile" >&2; exit 1; }
    "$PROFDATA" merge -o "$PGO_DIR/baseline.profdata" "$RAW"/baseline/*.profraw
fi
echo "== profile: $PGO_DIR/adplatform.profdata ($(du -h "$PGO_DIR/adplatform.profdata" | cut -f1))" >&2

echo "== optimised build (target dir $PGO_DIR/build)" >&2
CARGO_TARGET_DIR="$PGO_DIR/build" RUSTFLAGS="-Cprofile-use=$PGO_DIR/adplatform.profdata" \
    cargo build --release --locked -p adplatform
if [[ "${BASELINE:-0}" == 1 ]]; then
    CARGO_TARGET_DIR="$PGO_DIR/build" RUSTFLAGS="-Cprofile-use=$PGO_DIR/baseline.profdata" \
        cargo build --release --locked -p adp-server --example baseline_hyper
    echo "$PGO_DIR/build/release/examples/baseline_hyper"
fi
echo "$PGO_DIR/build/release/adplatform"
