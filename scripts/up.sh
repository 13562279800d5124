#!/usr/bin/env bash
# Builds Moat and the example functions, starts a node on ./.moat (embedded SQLite, no other
# service), deploys examples/hello and examples/echo, and says how to call them.
# Stop the node with Ctrl-C (it drains in-flight requests, then exits 0).
# Environment: MOAT_DATA_DIR (default ./.moat), MOAT_LISTEN (127.0.0.1:8080),
# MOAT_ADMIN_LISTEN (127.0.0.1:8081).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
data_dir="${MOAT_DATA_DIR:-./.moat}"
listen="${MOAT_LISTEN:-127.0.0.1:8080}"
admin_listen="${MOAT_ADMIN_LISTEN:-127.0.0.1:8081}"

command -v cargo >/dev/null || { echo "error: cargo not found; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
echo "==> building the example functions (wasm32-wasip2)"
scripts/build-guests.sh >/dev/null
echo "==> building moat"
cargo build -p moat-cli --quiet
moat="$repo/target/debug/moat"

echo "==> starting a node on $data_dir"
"$moat" up --data-dir "$data_dir" --listen "$listen" --admin-listen "$admin_listen" &
node=$!
trap 'kill -TERM $node 2>/dev/null; wait $node' INT TERM
export MOAT_ADMIN_URL="http://$admin_listen" MOAT_DATA_DIR="$data_dir"
for _ in $(seq 1 100); do
    "$moat" functions list >/dev/null 2>&1 && break
    kill -0 $node 2>/dev/null || { wait $node; exit 1; }
    sleep 0.1
done
"$moat" deploy examples/hello/moat.toml
"$moat" deploy examples/echo/moat.toml
cat <<MSG

Moat is running. Call the examples:

    curl http://$listen/hello
    curl -X POST -d 'hi' http://$listen/echo/anything?x=1
    $moat invoke hello

Manage it (the admin token is in $data_dir/admin.token):

    $moat functions list
    $moat logs echo
    curl http://$admin_listen/metrics

Stop with Ctrl-C.
MSG
wait $node
