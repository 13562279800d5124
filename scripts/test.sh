#!/usr/bin/env bash
# Runs the whole test suite: unit tests, the store conformance suite, and the integration
# and security tests, which build the guest programs and start real nodes on loopback.
# Installs what it needs (the wasm32-wasip2 target); extra arguments go to `cargo test`.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
command -v cargo >/dev/null || { echo "error: cargo not found; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
command -v rustup >/dev/null || { echo "error: rustup not found; it installs the wasm32-wasip2 target (https://rustup.rs)" >&2; exit 1; }
scripts/build-guests.sh >/dev/null
cargo test --workspace "$@"
