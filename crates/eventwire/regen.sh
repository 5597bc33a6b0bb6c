#!/usr/bin/env bash
# Regenerates src/event_v1_capnp.rs from capnp/event_v1.capnp. The generated code is committed,
# so building the crate needs neither tool; run this after changing the schema, then commit both.
#
# Needs the Cap'n Proto compiler (`apt-get install capnproto`) and the Rust plugin of the same
# minor version as the `capnp` runtime in Cargo.lock (`cargo install capnpc --version 0.27.0`,
# which installs `capnpc-rust`; CAPNPC_RUST may point at it).
set -euo pipefail
cd "$(dirname "$0")"

plugin="${CAPNPC_RUST:-$(command -v capnpc-rust || true)}"
if ! command -v capnp >/dev/null; then
    echo "regen: capnp not found; install it with: apt-get install capnproto" >&2
    exit 1
fi
if [ -z "$plugin" ]; then
    echo "regen: capnpc-rust not found; install it with: cargo install capnpc --version 0.27.0" >&2
    exit 1
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
capnp compile "-o$plugin:$out" --src-prefix=capnp capnp/event_v1.capnp
mv "$out/event_v1_capnp.rs" src/event_v1_capnp.rs
echo "regen: wrote src/event_v1_capnp.rs"
