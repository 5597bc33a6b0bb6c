#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs and starts what the tests need, then
# runs formatting, lint and every test. CI (.ci/run) calls exactly this.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p adp-store   # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

need_cargo() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo not found; install Rust (https://rustup.rs) and re-run" >&2
        exit 1
    fi
    # rustfmt and clippy come with rustup's default profile; add them if this toolchain lacks them.
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            if command -v rustup >/dev/null 2>&1; then
                rustup component add "$component"
            else
                echo "error: cargo $component is missing and rustup is not available" >&2
                exit 1
            fi
        fi
    done
}

# External services the tests talk to. The catalog/management tests need none: SQLite is
# embedded (bundled by rusqlite). Services such as Redis, a Kafka-API broker and ClickHouse
# are installed and started by scripts/services.sh when suites that need them exist.
start_services() {
    if [ -x scripts/services.sh ]; then
        scripts/services.sh start
        trap 'scripts/services.sh stop' EXIT
    fi
}

need_cargo
start_services

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The fuzz targets are a workspace of their own (cargo-fuzz builds them with sanitizers, see
# scripts/fuzz.sh); checking them here keeps them compiling against the crates' APIs. Their
# dependencies are locked (fuzz/Cargo.lock) like the workspace's.
log "cargo check of the fuzz targets (fuzz/)"
cargo check --manifest-path fuzz/Cargo.toml --bins --locked

log "cargo test"
cargo test --workspace --locked --no-fail-fast "$@"

# The deployment layer (Helm, Ansible, Terraform, scripts) checked offline; skip with
# ADP_SKIP_DEPLOY_CHECKS=1 when iterating on Rust code only.
if [ "${ADP_SKIP_DEPLOY_CHECKS:-0}" != 1 ]; then
    log "deployment checks (scripts/check-deploy.sh)"
    scripts/check-deploy.sh
fi
