#!/usr/bin/env bash
# Fuzzes the decide request path, the OpenRTB bid request path and the tracking-URL verifier
# with libFuzzer (cargo-fuzz).
#
#   scripts/fuzz.sh [seconds-per-target]     # default 60
#
# cargo-fuzz is installed from crates.io if missing. It needs nightly-only compiler flags
# (sanitizers); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Findings land in
# fuzz/artifacts/<target>/; the corpus grows in fuzz/corpus/<target>/ (both git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/corpus/decide_request
# Seed the decide corpus with real requests.
printf '%s' '{"placements":[{"id":"plc-1"}],"user":{"id":"u1"}}' > fuzz/corpus/decide_request/minimal.json
printf '%s' '{"id":"r1","placements":[{"id":"plc-2"},{"sizes":["728x90"],"formats":["banner"],"floor_micros":5}],"user":{"id":"u","segments":["seg-1"]},"page":{"url":"https://www.news.example/a"},"device":{"type":"phone","os":"ios","ip":"10.0.0.1","language":"en-US"},"geo":{"country":"DE"},"key_values":{"section":["news","tech"]},"deals":["d"],"test":true}' > fuzz/corpus/decide_request/full.json
# Seed the bid request corpus with the OpenRTB samples.
mkdir -p fuzz/corpus/bid_request
cp crates/openrtb/testdata/*.json fuzz/corpus/bid_request/
for target in decide_request bid_request tracking_url; do
    echo "== fuzzing $target for ${secs}s"
    cargo fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=4096
done
