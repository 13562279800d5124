#!/usr/bin/env bash
# DLP cost on the request path: the same component (crates/test-programs/tp-big-response)
# answering 64 KiB, deployed twice on one Moat node — with a granted secret, so every
# response is scanned for it (and the default `secrets` detector plus `credit-card`,
# `private-key`, `aws-key`, `jwt`), and without any, so no scanner is built. Both measured in
# the same run with wrk at 16 connections (and 1); prints medians and the ratio.
#
# Environment: DURATION=10, ROUNDS=3, CONNS="1 16", BYTES=65536, SKIP_BUILD=1.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
DURATION="${DURATION:-10}" ROUNDS="${ROUNDS:-3}" CONNS="${CONNS:-1 16}" BYTES="${BYTES:-65536}"
unset MOAT_TOKEN MOAT_ADMIN_URL MOAT_DATA_DIR MOAT_GATEWAY_URL MOAT_MASTER_KEY RUST_BACKTRACE
command -v wrk >/dev/null || { echo "installing wrk (apt-get)" >&2; apt-get install -y -qq wrk >/dev/null; }
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p moat-cli
    scripts/build-guests.sh >/dev/null
fi
moat="$repo/target/release/moat"
wasm="$repo/target/wasm/wasm32-wasip2/release/tp_big_response.wasm"
tmp="$(mktemp -d)"
pid=""
trap '[[ -n "$pid" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
port=$((20000 + RANDOM % 20000)); admin=$((port + 1))
"$moat" up --data-dir "$tmp/data" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    >"$tmp/node.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done
m() { "$moat" --admin "http://127.0.0.1:$admin" --data-dir "$tmp/data" "$@"; }
printf 'sk_live_bench_0123456789abcdef' | m secrets set api-key >/dev/null
deploy() { # NAME EXTRA
    mkdir -p "$tmp/$1"
    printf '[function]\nname = "%s"\ncomponent = "%s"\nroute = "/%s"\nauth = "public"\n%b' \
        "$1" "$wasm" "$1" "$2" >"$tmp/$1/moat.toml"
    m deploy "$tmp/$1" >/dev/null
}
deploy dlp-on '[permissions]\nsecrets = ["api-key"]\n[dlp]\ndetectors = ["secrets", "credit-card", "private-key", "aws-key", "jwt"]\n'
deploy dlp-off ''
for f in dlp-on dlp-off; do
    n=$(curl -s "http://127.0.0.1:$port/$f?bytes=$BYTES" | wc -c)
    [[ "$n" == "$BYTES" ]] || { echo "error: /$f answered $n bytes" >&2; exit 1; }
done

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # URL CONNS -> "rps p50_ms"
    local t=$(( $2 < 2 ? $2 : 2 ))
    wrk -t"$t" -c"$2" -d"${DURATION}s" --latency "$1" | awk '
        /Requests\/sec/ {rps=$2}
        /^ +50%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else {sub(/s/,"",v); v*=1000}; p50=v}
        END {print rps, p50}'
}
wrk -t2 -c16 -d2s "http://127.0.0.1:$port/dlp-on?bytes=$BYTES" >/dev/null
echo "| c | DLP off req/s | DLP on req/s | on / off | off p50 (ms) | on p50 (ms) |"
echo "|---|---|---|---|---|---|"
for c in $CONNS; do
    rn=(); rk=(); pn=(); pk=()
    for ((i = 0; i < ROUNDS; i++)); do
        read -r a b < <(run "http://127.0.0.1:$port/dlp-off?bytes=$BYTES" "$c"); rn+=("$a"); pn+=("$b")
        read -r a b < <(run "http://127.0.0.1:$port/dlp-on?bytes=$BYTES" "$c"); rk+=("$a"); pk+=("$b")
    done
    n=$(printf '%s\n' "${rn[@]}" | median); k=$(printf '%s\n' "${rk[@]}" | median)
    printf '| %s | %.0f | %.0f | %.2f | %.3f | %.3f |\n' "$c" "$n" "$k" "$(echo "$k / $n" | bc -l)" \
        "$(printf '%s\n' "${pn[@]}" | median)" "$(printf '%s\n' "${pk[@]}" | median)"
done
