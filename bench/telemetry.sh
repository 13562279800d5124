#!/usr/bin/env bash
# The cost of Moat's visibility on the request path, and how quickly it shows.
#
# 1. Throughput: two Moat nodes side by side, one with audit, function logs, metrics and
#    tracing ON (`--otlp-endpoint` to a local sink that discards, bench/delays.py sink) and one
#    with them OFF (the hidden benchmarking flag `--telemetry-off`: the gateway reports
#    nothing). Each serves `hello` (prints nothing: metrics, histograms and one trace per
#    request) and `talker` (tp-log: two lines of output per request, also stored and exported
#    as log records). wrk at CONNS connections, ROUNDS interleaved rounds (off then on, then
#    on then off, …), medians; the ratio is on / off (issue 6 asks for >= 0.95 at 16
#    connections), and the median of each round's own ratio (a round runs off and on back to
#    back, so a change of the shared machine's speed between rounds cancels out). Also the
#    node process's CPU time (user + system, /proc/PID/stat) per request served: what
#    telemetry costs.
# 2. Delays on the ON node, idle, SAMPLES each (p50 / p99): an audit event (a failed login)
#    to its alert webhook delivered on loopback; an invocation to its line in `moat logs -f`.
#
# Environment: DURATION=10 (s per wrk run), ROUNDS=5, CONNS="16", SAMPLES=50, SKIP_BUILD=1.
# Uses $CARGO_TARGET_DIR when set. Prints markdown tables.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
DURATION="${DURATION:-10}" ROUNDS="${ROUNDS:-5}" CONNS="${CONNS:-16}" SAMPLES="${SAMPLES:-50}"
unset MOAT_TOKEN MOAT_ADMIN_URL MOAT_DATA_DIR MOAT_GATEWAY_URL MOAT_MASTER_KEY RUST_BACKTRACE
command -v wrk >/dev/null || { echo "installing wrk (apt-get)" >&2; apt-get install -y -qq wrk >/dev/null; }
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p moat-cli
    scripts/build-guests.sh >/dev/null
fi
moat="${CARGO_TARGET_DIR:-$repo/target}/release/moat"
wasm="$repo/target/wasm/wasm32-wasip2/release"
tmp="$(mktemp -d)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT
base=$((20000 + RANDOM % 20000))
sink=$((base + 10)) hook=$((base + 11))
python3 bench/delays.py sink "$sink" &
pids+=($!)

declare -A gw adm pid
start() { # NAME PORT FLAGS...
    local name=$1 port=$2; shift 2
    "$moat" up --data-dir "$tmp/$name" --listen "127.0.0.1:$port" \
        --admin-listen "127.0.0.1:$((port + 1))" "$@" >"$tmp/$name.log" 2>&1 &
    pids+=($!)
    pid[$name]=$!
    gw[$name]="http://127.0.0.1:$port" adm[$name]="http://127.0.0.1:$((port + 1))"
    for _ in $(seq 100); do curl -sf "${adm[$name]}/readyz" >/dev/null && break; sleep 0.1; done
    for f in hello:hello talker:tp_log; do
        mkdir -p "$tmp/m-$name-${f%%:*}"
        printf '[function]\nname = "%s"\ncomponent = "%s/%s.wasm"\nroute = "/%s"\nauth = "public"\n' \
            "${f%%:*}" "$wasm" "${f##*:}" "${f%%:*}" >"$tmp/m-$name-${f%%:*}/moat.toml"
        "$moat" --admin "${adm[$name]}" --data-dir "$tmp/$name" deploy "$tmp/m-$name-${f%%:*}" >/dev/null
    done
    [[ $(curl -s "${gw[$name]}/hello") == "Hello, world!" ]]
    [[ $(curl -s "${gw[$name]}/talker") == logged ]]
}
start on "$base" --otlp-endpoint "http://127.0.0.1:$sink"
start off "$((base + 2))" --telemetry-off

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# CPU time (user + system, clock ticks) the node process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # NODE URL CONNS -> "rps p50_ms p99_ms cpu_us_per_request"
    local t=$(( $3 < 2 ? $3 : 2 )) before
    before=$(ticks "${pid[$1]}")
    wrk -t"$t" -c"$3" -d"${DURATION}s" --latency "$2" >"$tmp/wrk.txt"
    awk -v ticks="$(( $(ticks "${pid[$1]}") - before ))" -v hz="$(getconf CLK_TCK)" '
        function ms(v) { if (v ~ /us$/) {sub(/us/,"",v); return v/1000} if (v ~ /ms$/) {sub(/ms/,"",v); return v} sub(/s/,"",v); return v*1000 }
        /requests in/ {n=$1}
        /Requests\/sec/ {rps=$2}
        /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)}
        /Non-2xx/ {bad=1}
        END {if (bad) print "non-2xx responses" > "/dev/stderr"; print rps, p50, p99, ticks / hz * 1e6 / n}' "$tmp/wrk.txt"
}
for n in off on; do for f in hello talker; do wrk -t2 -c16 -d2s "${gw[$n]}/$f" >/dev/null; done; done
echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; ${ROUNDS} rounds of ${DURATION} s"
echo
echo "| function | c | telemetry off req/s | on req/s | on / off | paired on / off | node CPU µs/req off | on | on / off | paired on / off | off p50 / p99 (ms) | on p50 / p99 (ms) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for f in hello talker; do
    for c in $CONNS; do
        declare -a r_off=() r_on=() p_off=() p_on=() q_off=() q_on=() u_off=() u_on=()
        for ((i = 0; i < ROUNDS; i++)); do
            # Alternate which goes first, so an order effect cancels out over the rounds.
            order="off on"; ((i % 2)) && order="on off"
            for n in $order; do
                read -r a b d u < <(run "$n" "${gw[$n]}/$f" "$c")
                if [[ $n == off ]]; then r_off+=("$a"); p_off+=("$b"); q_off+=("$d"); u_off+=("$u")
                else r_on+=("$a"); p_on+=("$b"); q_on+=("$d"); u_on+=("$u"); fi
            done
        done
        echo "rounds $f c=$c req/s off: ${r_off[*]} | on: ${r_on[*]}" >>"$tmp/rounds.txt"
        echo "rounds $f c=$c CPU µs/req off: ${u_off[*]} | on: ${u_on[*]}" >>"$tmp/rounds.txt"
        off=$(printf '%s\n' "${r_off[@]}" | median); on=$(printf '%s\n' "${r_on[@]}" | median)
        uoff=$(printf '%s\n' "${u_off[@]}" | median); uon=$(printf '%s\n' "${u_on[@]}" | median)
        # Paired: each round's on / off (run back to back), then their median; steadier
        # when the shared machine changes speed between rounds.
        paired() { local -n a=$1 b=$2; for i in "${!a[@]}"; do echo "${b[$i]} / ${a[$i]}" | bc -l; done | median; }
        printf '| %s | %s | %.0f | %.0f | %.3f | %.3f | %.1f | %.1f | %.3f | %.3f | %.2f / %.2f | %.2f / %.2f |\n' "$f" "$c" "$off" "$on" \
            "$(echo "$on / $off" | bc -l)" "$(paired r_off r_on)" \
            "$uoff" "$uon" "$(echo "$uon / $uoff" | bc -l)" "$(paired u_off u_on)" \
            "$(printf '%s\n' "${p_off[@]}" | median)" "$(printf '%s\n' "${q_off[@]}" | median)" \
            "$(printf '%s\n' "${p_on[@]}" | median)" "$(printf '%s\n' "${q_on[@]}" | median)"
    done
done
echo
sed 's/^/    /' "$tmp/rounds.txt"
m_on=$(curl -s "${adm[on]}/metrics")
echo
echo "ON node after load: $(grep -E '^moat_otlp_(exported|dropped)_total' <<<"$m_on" | tr '\n' ' ')"
echo "                    $(grep -E '^moat_function_log_records_dropped_total|^moat_limit_audit_records_total' <<<"$m_on" | tr '\n' ' ')"

# Delays, on the idle ON node.
m() { "$moat" --admin "${adm[on]}" --data-dir "$tmp/on" "$@"; }
printf 'whsec_bench_0123456789' | m secrets set hook-key >/dev/null
cat >"$tmp/alerts.toml" <<TOML
[[alert]]
name = "bench-failed-login"
when = { kind = "any", action = "auth.failed" }
window = "10s"
threshold = 0
quiet = "0s"
sinks = [{ kind = "webhook", url = "http://127.0.0.1:$hook/hook", secret_name = "hook-key" }]
TOML
m alerts add "$tmp/alerts.toml" >/dev/null
read -r a50 a99 an < <(python3 bench/delays.py alert "${adm[on]}" "$hook" "$SAMPLES")
read -r l50 l99 ln < <(python3 bench/delays.py logs "${gw[on]}" "${adm[on]}" "$moat" "$tmp/on" "$SAMPLES")
echo
echo "| delay (idle node) | samples | p50 (ms) | p99 (ms) |"
echo "|---|---|---|---|"
echo "| audit event (failed login) to signed alert webhook delivered | $an | $a50 | $a99 |"
echo "| invocation to its line in \`moat logs -f\` | $ln | $l50 | $l99 |"
