#!/usr/bin/env bash
# Builds the guest WebAssembly components (examples/ and crates/test-programs/) in release
# mode for wasm32-wasip2 into target/wasm/, and prints the path of every .wasm built.
# Works from any directory. Extra arguments are passed to `cargo build` (e.g. --offline).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target=wasm32-wasip2
export CARGO_TARGET_DIR="$repo/target/wasm"

if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

for workspace in examples crates/test-programs; do
    echo "building $workspace" >&2
    cargo build --release --target "$target" \
        --manifest-path "$repo/$workspace/Cargo.toml" "$@"
done

# The supply-chain tests need a real component built with `cargo auditable` (it embeds the
# dependency list in a `.dep-v0` section); tp-audited is its own workspace for that reason.
if ! command -v cargo-auditable >/dev/null; then
    echo "installing cargo-auditable (cargo install cargo-auditable --locked)" >&2
    env -u CARGO_TARGET_DIR cargo install cargo-auditable --locked --version 0.7.7 >&2 ||
        { echo "error: the tests need cargo-auditable: cargo install cargo-auditable --locked" >&2; exit 1; }
fi
echo "building crates/test-programs/tp-audited with cargo auditable" >&2
# Its own target dir: a plain `cargo build` of the same crate would look up to date to
# `cargo auditable` and leave the section out.
CARGO_TARGET_DIR="$repo/target/wasm-auditable" cargo auditable build --release --target "$target" \
    --manifest-path "$repo/crates/test-programs/tp-audited/Cargo.toml" "$@"
cp "$repo/target/wasm-auditable/$target/release/tp_audited.wasm" "$CARGO_TARGET_DIR/$target/release/"

out="$CARGO_TARGET_DIR/$target/release"
for crate in hello echo tp_trap tp_counter tp_escape tp_log tp_hello_v2 tp_sleep tp_spin \
    tp_big_log tp_memory tp_recurse tp_big_response \
    tp_fetch tp_config tp_kv tp_audited; do
    wasm="$out/$crate.wasm"
    if [[ ! -f "$wasm" ]]; then
        echo "error: $wasm was not built" >&2
        exit 1
    fi
    echo "$wasm"
done
