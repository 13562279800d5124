#!/usr/bin/env bash
# Runs the whole test suite: unit tests, the store conformance suite, and the integration
# and security tests, which build the guest programs and start real nodes on loopback.
# Installs what it needs (the wasm32-wasip2 target, minisign, chromium, e2e/'s npm packages);
# extra arguments go to `cargo test`.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
command -v cargo >/dev/null || { echo "error: cargo not found; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
command -v rustup >/dev/null || { echo "error: rustup not found; it installs the wasm32-wasip2 target (https://rustup.rs)" >&2; exit 1; }
# The reference minisign tool checks that Moat's signatures are minisign's format.
if ! command -v minisign >/dev/null; then
    echo "installing minisign (apt-get)" >&2
    if [[ $(id -u) -eq 0 ]]; then apt-get update -qq && apt-get install -y -qq minisign >/dev/null;
    else sudo apt-get update -qq && sudo apt-get install -y -qq minisign >/dev/null; fi ||
        { echo "error: minisign is needed by the tests: apt-get install -y minisign" >&2; exit 1; }
fi
# The dashboard's browser test (crates/moat-cli/tests/dashboard.rs) drives Debian's Chromium
# with playwright-core from e2e/ (pinned in e2e/package-lock.json; it never downloads a browser).
if ! command -v chromium >/dev/null; then
    echo "installing chromium (apt-get)" >&2
    if [[ $(id -u) -eq 0 ]]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null;
    else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi ||
        { echo "error: chromium is needed by the dashboard test: apt-get install -y chromium" >&2; exit 1; }
fi
command -v npm >/dev/null || { echo "error: node and npm are needed by the dashboard test: apt-get install -y nodejs npm" >&2; exit 1; }
if [[ ! -d e2e/node_modules/playwright-core ]]; then
    echo "installing e2e/ dependencies (npm ci)" >&2
    (cd e2e && npm ci --no-audit --no-fund >/dev/null) ||
        { echo "error: npm ci in e2e/ failed" >&2; exit 1; }
fi
scripts/build-guests.sh >/dev/null
cargo test --workspace "$@"
