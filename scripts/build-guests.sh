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

out="$CARGO_TARGET_DIR/$target/release"
for crate in hello echo tp_trap tp_counter tp_escape tp_log tp_hello_v2 tp_sleep tp_spin \
    tp_big_log tp_memory tp_recurse tp_big_response \
    tp_fetch tp_config tp_kv; do
    wasm="$out/$crate.wasm"
    if [[ ! -f "$wasm" ]]; then
        echo "error: $wasm was not built" >&2
        exit 1
    fi
    echo "$wasm"
done
