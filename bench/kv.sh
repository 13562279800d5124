#!/usr/bin/env bash
# Key-value throughput: the same component (crates/test-programs/tp-kv) deployed twice on one
# Moat node — once answering without touching key-value (`op=none`, the baseline), once making
# one `wasi:keyvalue` read per request (`op=get` of a 64-byte value in a granted bucket: a
# Cedar decision, a store read and an AES-256-GCM open). Both measured in the same run with
# wrk; prints a markdown table of medians and the ratio.
#
# Environment: DURATION=10 (s per run), ROUNDS=3, CONNS="1 16", SKIP_BUILD=1.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
DURATION="${DURATION:-10}" ROUNDS="${ROUNDS:-3}" CONNS="${CONNS:-1 16}"
unset MOAT_TOKEN MOAT_ADMIN_URL MOAT_DATA_DIR MOAT_GATEWAY_URL MOAT_MASTER_KEY RUST_BACKTRACE
command -v wrk >/dev/null || { echo "installing wrk (apt-get)" >&2; apt-get install -y -qq wrk >/dev/null; }
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p moat-cli
    scripts/build-guests.sh >/dev/null
fi
moat="$repo/target/release/moat"
wasm="$repo/target/wasm/wasm32-wasip2/release/tp_kv.wasm"
tmp="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
port=$((20000 + RANDOM % 20000)); admin=$((port + 1))
"$moat" up --data-dir "$tmp/data" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    >"$tmp/node.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done
m() { "$moat" --admin "http://127.0.0.1:$admin" --data-dir "$tmp/data" "$@"; }
m kv create bench >/dev/null
for name in kv-read kv-none; do
    mkdir -p "$tmp/$name"
    printf '[function]\nname = "%s"\ncomponent = "%s"\nroute = "/%s"\nauth = "public"\n[permissions]\nkv = ["bench"]\n' \
        "$name" "$wasm" "$name" >"$tmp/$name/moat.toml"
    m deploy "$tmp/$name" >/dev/null
done
value=$(printf 'v%.0s' $(seq 64))
[[ $(curl -s "http://127.0.0.1:$port/kv-read?bucket=bench&op=set&key=k&value=$value") == set ]]
[[ $(curl -s "http://127.0.0.1:$port/kv-read?bucket=bench&op=get&key=k") == "value $value" ]]
[[ $(curl -s "http://127.0.0.1:$port/kv-none?op=none") == none ]]

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # URL CONNS -> "rps p50_ms"
    local t=$(( $2 < 2 ? $2 : 2 ))
    wrk -t"$t" -c"$2" -d"${DURATION}s" --latency "$1" | awk '
        /Requests\/sec/ {rps=$2}
        /^ +50%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else {sub(/s/,"",v); v*=1000}; p50=v}
        /Non-2xx/ {bad=1}
        END {if (bad) print "non-2xx" > "/dev/stderr"; print rps, p50}'
}
wrk -t2 -c16 -d2s "http://127.0.0.1:$port/kv-read?bucket=bench&op=get&key=k" >/dev/null
echo "| c | none req/s | one KV read req/s | ratio | none p50 (ms) | one KV read p50 (ms) |"
echo "|---|---|---|---|---|---|"
for c in $CONNS; do
    declare -a rn=() rk=() pn=() pk=()
    for ((i = 0; i < ROUNDS; i++)); do
        read -r a b < <(run "http://127.0.0.1:$port/kv-none?op=none" "$c"); rn+=("$a"); pn+=("$b")
        read -r a b < <(run "http://127.0.0.1:$port/kv-read?bucket=bench&op=get&key=k" "$c"); rk+=("$a"); pk+=("$b")
    done
    n=$(printf '%s\n' "${rn[@]}" | median); k=$(printf '%s\n' "${rk[@]}" | median)
    printf '| %s | %.0f | %.0f | %.2f | %.3f | %.3f |\n' "$c" "$n" "$k" "$(echo "$k / $n" | bc -l)" \
        "$(printf '%s\n' "${pn[@]}" | median)" "$(printf '%s\n' "${pk[@]}" | median)"
done
