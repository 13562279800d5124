#!/usr/bin/env bash
# Advisory database: scan and import cost with 50,000 generated OSV advisories.
#
# 1. `advisory_bench` (crates/moat-supply/examples) prints, in one run: reading the
#    `all.zip` export, building the database, scanning a 300-package bill of materials
#    (target < 100 ms), and a baseline scan that walks every advisory.
# 2. Then a real node imports that zip with `moat advisories import` while 20 functions
#    are deployed (each import re-scans every deployed version): the first import (all new)
#    and a second (all unchanged), timed end to end, medians of ROUNDS.
#
# Environment: ADVISORIES=50000, PACKAGES=300, ROUNDS=3, SKIP_BUILD=1.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
ADVISORIES="${ADVISORIES:-50000}" PACKAGES="${PACKAGES:-300}" ROUNDS="${ROUNDS:-3}"
unset MOAT_TOKEN MOAT_ADMIN_URL MOAT_DATA_DIR MOAT_GATEWAY_URL MOAT_MASTER_KEY RUST_BACKTRACE
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p moat-cli
    cargo build --release -p moat-supply --example advisory_bench
    scripts/build-guests.sh >/dev/null
fi
moat="$repo/target/release/moat"
tmp="$(mktemp -d)"
pid=
trap '[[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
"$repo/target/release/examples/advisory_bench" "$ADVISORIES" "$PACKAGES" "$tmp/all.zip"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
first=(); again=()
for round in $(seq "$ROUNDS"); do
    port=$((20000 + RANDOM % 20000)); admin=$((port + 1))
    rm -rf "$tmp/data"
    "$moat" up --data-dir "$tmp/data" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
        >"$tmp/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done
    m() { "$moat" --admin "http://127.0.0.1:$admin" --data-dir "$tmp/data" "$@"; }
    for i in $(seq 20); do
        mkdir -p "$tmp/f$i"
        printf '[function]\nname = "f%s"\ncomponent = "%s"\nroute = "/f%s"\n' \
            "$i" "$repo/target/wasm/wasm32-wasip2/release/tp_audited.wasm" "$i" >"$tmp/f$i/moat.toml"
        m deploy "$tmp/f$i" >/dev/null
    done
    t0=$(date +%s%N); m advisories import "$tmp/all.zip" >/dev/null; t1=$(date +%s%N)
    m advisories import "$tmp/all.zip" >/dev/null; t2=$(date +%s%N)
    first+=($(( (t1 - t0) / 1000000 ))); again+=($(( (t2 - t1) / 1000000 )))
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
echo
echo "| node import of $ADVISORIES advisories (20 functions deployed, re-scanned) | median | rounds |"
echo "|---|---|---|"
echo "| first import (all new) | $(printf '%s\n' "${first[@]}" | median) ms | $ROUNDS |"
echo "| same export again (all unchanged) | $(printf '%s\n' "${again[@]}" | median) ms | $ROUNDS |"
