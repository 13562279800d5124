#!/usr/bin/env bash
# Moat benchmark: the same hello-world wasi:http component served by `wasmtime serve`, by the
# bare baseline (bench/baseline: plain wasmtime-wasi-http on Moat's engine settings) and by
# Moat, measured in the same run on loopback, and printed as one markdown table plus ratios.
# Raw wrk outputs, server logs and the tables go to bench/out/<timestamp>/ (and the tables to
# bench/out/results.md). See bench/README.md for what is measured and how to read it.
#
# Environment (all optional):
#   DURATION=10        seconds per wrk run
#   ROUNDS=3           wrk rounds per (server, concurrency); the table shows the median
#   CONNS="1 16 64"    wrk concurrencies (threads = min(conns, 2))
#   WARMUP=2           seconds of untimed wrk load per server before measuring
#   STARTUP_RUNS=3     runs per time-to-first-200 measurement (median reported)
#   FUNCTIONS=1000     functions deployed in the many-functions RSS scenario (0 skips it)
#   JSON_SCHEMA=1      0 skips the JSON-schema validation scenario
#   JSON_CONNS="1 16"  wrk concurrencies of the JSON-schema scenario
#   SKIP_BUILD=1       use the binaries and guests already built
#   SKIP_INSTALL=1     never install wrk or wasmtime (fail if missing)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-1 16 64}"
WARMUP="${WARMUP:-2}"
STARTUP_RUNS="${STARTUP_RUNS:-3}"
FUNCTIONS="${FUNCTIONS:-1000}"
JSON_SCHEMA="${JSON_SCHEMA:-1}"
JSON_CONNS="${JSON_CONNS:-1 16}"
SKIP_BUILD="${SKIP_BUILD:-0}"
SKIP_INSTALL="${SKIP_INSTALL:-0}"
WASMTIME_VERSION=48.0.8
# The CLI would prefer these over the data dirs and addresses this script passes.
unset MOAT_TOKEN MOAT_ADMIN_URL MOAT_DATA_DIR MOAT_GATEWAY_URL MOAT_MASTER_KEY
# Every server runs without error backtraces: with RUST_BACKTRACE set, wasmtime captures one
# for an internal error value it makes while dropping each request's store, which costs all
# three servers tens of microseconds per request and measures the environment, not them.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

for v in DURATION ROUNDS WARMUP STARTUP_RUNS FUNCTIONS JSON_SCHEMA; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "error: $v must be a whole number, got '${!v}'" >&2; exit 2; }
done
((DURATION >= 1 && ROUNDS >= 1 && STARTUP_RUNS >= 1)) ||
    { echo "error: DURATION, ROUNDS and STARTUP_RUNS must be at least 1" >&2; exit 2; }

wasm="$repo/target/wasm/wasm32-wasip2/release/hello.wasm"
moat="$repo/target/release/moat"
baseline="$repo/target/release/moat-bench-baseline"
out_root="$repo/bench/out"
out="$out_root/$(date +%Y%m%d-%H%M%S)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/moat-bench.XXXXXX")"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Processes: every server started here is recorded and killed on exit.
# ---------------------------------------------------------------------------------------------
declare -a servers=()

alive() { # PID: running and not a zombie
    local state
    state="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z ]]
}

forget() { # PID
    local p kept=()
    for p in "${servers[@]}"; do [[ "$p" == "$1" ]] || kept+=("$p"); done
    servers=("${kept[@]}")
}

stop_server() { # PID: SIGTERM, up to 15 s to exit, then SIGKILL
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 1500; i++)); do
        alive "$pid" || break
        sleep 0.01
    done
    if alive "$pid"; then
        echo "warning: PID $pid ignored SIGTERM for 15 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

cleanup() {
    local pid
    for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${servers[@]}"; do
        for ((i = 0; i < 500; i++)); do alive "$pid" || break; sleep 0.01; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Small tools: time, ports, HTTP probes, numbers.
# ---------------------------------------------------------------------------------------------
now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }

declare -A used_ports=()
free_port() { # prints a loopback port nobody listens on (bounded tries)
    local i p fd
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        [[ -z "${used_ports[$p]:-}" ]] || continue
        if { exec {fd}<>"/dev/tcp/127.0.0.1/$p"; } 2>/dev/null; then
            exec {fd}>&-
            continue
        fi
        used_ports[$p]=1
        echo "$p"
        return 0
    done
    die "no free loopback port found"
}

http_status() { # PORT PATH: prints the status code of GET PATH, or nothing
    local fd line=""
    { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
    if printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" \
        >&"$fd" 2>/dev/null; then
        IFS= read -r -t 5 line <&"$fd" || true
    fi
    exec {fd}>&-
    line="${line#HTTP/1.? }"
    [[ "$line" =~ ^([0-9]{3}) ]] && echo "${BASH_REMATCH[1]}"
    return 0
}

# PORT PATH PID TIMEOUT_S [WANT]: polls every ~5 ms until GET PATH answers WANT (default 200;
# "any" accepts any HTTP status). Prints the microsecond timestamp of success. Fails if PID
# exits or the timeout passes.
wait_for() {
    local port="$1" path="$2" pid="$3" timeout_s="$4" want="${5:-200}" status deadline
    deadline=$(($(now_us) + timeout_s * 1000000))
    while (($(now_us) < deadline)); do
        status="$(http_status "$port" "$path")"
        if [[ -n "$status" && ("$want" == any || "$status" == "$want") ]]; then
            now_us
            return 0
        fi
        alive "$pid" || { echo "error: PID $pid exited while waiting for :$port$path" >&2; return 1; }
        sleep 0.005
    done
    echo "error: no $want from 127.0.0.1:$port$path within ${timeout_s}s" >&2
    return 1
}

median() { # numbers as arguments; "-" if none
    (($# > 0)) || { echo "-"; return; }
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

rss_mib() { # PID
    awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

fmt() { # PRINTF-FORMAT VALUE: "-" stays "-"
    if [[ "$2" == - || -z "$2" ]]; then echo "-"; else LC_ALL=C awk -v f="$1" -v v="$2" 'BEGIN {printf f, v}'; fi
}

# ---------------------------------------------------------------------------------------------
# Setup: tools and builds.
# ---------------------------------------------------------------------------------------------
as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }

ensure_wrk() {
    command -v wrk >/dev/null && return
    ((SKIP_INSTALL == 0)) || die "wrk not found (SKIP_INSTALL=1)"
    log "installing wrk (apt-get)"
    as_root apt-get update
    as_root apt-get install -y wrk
}

wasmtime_ok() {
    command -v wasmtime >/dev/null && [[ "$(wasmtime --version)" == "wasmtime $WASMTIME_VERSION"* ]]
}

ensure_wasmtime() {
    export PATH="$HOME/.cargo/bin:$PATH"
    wasmtime_ok && return
    local i
    # Someone (another script, a setup step) may already be installing it: wait, don't race.
    for ((i = 0; i < 720; i++)); do
        pgrep -f "cargo install wasmtime-cli" >/dev/null || break
        ((i % 12 == 0)) && log "waiting for a running 'cargo install wasmtime-cli' to finish"
        sleep 5
    done
    wasmtime_ok && return
    ((SKIP_INSTALL == 0)) || die "wasmtime $WASMTIME_VERSION not found (SKIP_INSTALL=1)"
    log "installing wasmtime $WASMTIME_VERSION (cargo install; takes a while)"
    cargo install wasmtime-cli --version "$WASMTIME_VERSION" --locked
    wasmtime_ok || die "wasmtime $WASMTIME_VERSION still not on PATH after cargo install"
}

build() {
    if ((SKIP_BUILD)); then
        log "SKIP_BUILD=1: using the binaries already built"
    else
        log "building moat and the baseline (release)"
        cargo build --release -p moat-cli -p moat-bench-baseline
        log "building the guests"
        scripts/build-guests.sh >/dev/null
    fi
    local f
    for f in "$moat" "$baseline" "$wasm"; do [[ -f "$f" ]] || die "$f is missing"; done
}

# ---------------------------------------------------------------------------------------------
# Servers. Each start_* sets $pid and $port.
# ---------------------------------------------------------------------------------------------
start_wasmtime() { # LOGNAME [EXTRA WASMTIME FLAGS...]
    local name="$1"
    shift
    port="$(free_port)"
    wasmtime serve "$@" -S cli=y --addr "127.0.0.1:$port" "$wasm" >"$out/$name.log" 2>&1 &
    pid=$!
    servers+=("$pid")
}

start_baseline() { # LOGNAME
    port="$(free_port)"
    "$baseline" --listen "127.0.0.1:$port" "$wasm" >"$out/$1.log" 2>&1 &
    pid=$!
    servers+=("$pid")
}

start_moat() { # LOGNAME DATA_DIR; also sets $admin_port (kept if already set for this dir)
    local data_dir="$2"
    port="${moat_ports[$data_dir]:-$(free_port)}"
    admin_port="${moat_admin_ports[$data_dir]:-$(free_port)}"
    moat_ports[$data_dir]="$port"
    moat_admin_ports[$data_dir]="$admin_port"
    "$moat" up --data-dir "$data_dir" --listen "127.0.0.1:$port" \
        --admin-listen "127.0.0.1:$admin_port" >>"$out/$1.log" 2>&1 &
    pid=$!
    servers+=("$pid")
}
declare -A moat_ports=() moat_admin_ports=()

moat_cli() { # DATA_DIR ADMIN_PORT ARGS...
    local data_dir="$1" admin="$2"
    shift 2
    "$moat" --admin "http://127.0.0.1:$admin" --data-dir "$data_dir" "$@"
}

wait_moat_ready() { # PID PORT ADMIN_PORT: both listeners answer HTTP
    wait_for "$2" / "$1" 60 any >/dev/null && wait_for "$3" / "$1" 60 any >/dev/null
}

# ---------------------------------------------------------------------------------------------
# (a) Time to first 200. Medians in ms, into first_cold / first_warm (each run: startup.txt).
# ---------------------------------------------------------------------------------------------
declare -A first_cold=() first_warm=()

# Process start -> first 200. wasmtime serve cold: its compilation cache off (-C cache=n);
# warm: its default cache, primed by one untimed run.
startup_wasmtime() {
    local i t0 t1 cold=() warm=()
    for ((i = 1; i <= STARTUP_RUNS; i++)); do
        t0=$(now_us)
        start_wasmtime "startup-wasmtime-cold-$i" -C cache=n
        t1=$(wait_for "$port" /hello "$pid" 120) || die "wasmtime serve did not answer (see $out/startup-wasmtime-cold-$i.log)"
        cold+=("$(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100))")
        stop_server "$pid"
    done
    start_wasmtime startup-wasmtime-prime
    wait_for "$port" /hello "$pid" 120 >/dev/null || die "wasmtime serve did not answer"
    stop_server "$pid"
    for ((i = 1; i <= STARTUP_RUNS; i++)); do
        t0=$(now_us)
        start_wasmtime "startup-wasmtime-warm-$i"
        t1=$(wait_for "$port" /hello "$pid" 120) || die "wasmtime serve did not answer (see $out/startup-wasmtime-warm-$i.log)"
        warm+=("$(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100))")
        stop_server "$pid"
    done
    first_cold[wasmtime]="$(median "${cold[@]}")"
    first_warm[wasmtime]="$(median "${warm[@]}")"
    echo "wasmtime serve: cold ${cold[*]} ms; warm cache ${warm[*]} ms" >>"$out/startup.txt"
}

# Process start -> first 200; the baseline compiles in-process every time (it has no cache).
startup_baseline() {
    local i t0 t1 cold=()
    for ((i = 1; i <= STARTUP_RUNS; i++)); do
        t0=$(now_us)
        start_baseline "startup-baseline-$i"
        t1=$(wait_for "$port" /hello "$pid" 120) || die "the baseline did not answer (see $out/startup-baseline-$i.log)"
        cold+=("$(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100))")
        stop_server "$pid"
    done
    first_cold[baseline]="$(median "${cold[@]}")"
    first_warm[baseline]="-"
    echo "baseline: cold ${cold[*]} ms" >>"$out/startup.txt"
}

# Cold: `moat deploy` started -> first 200, on a fresh node each run (compiles in the jailed
# child). Warm: SIGTERM, start again on the same data dir (artifact cache warm) -> first 200.
# Leaves the last node running in $moat_pid / $moat_port / $moat_dir for the load runs.
startup_moat() {
    local i t0 t1 dir deployer cold=() warm=()
    for ((i = 1; i <= STARTUP_RUNS; i++)); do
        dir="$tmp/moat-$i"
        start_moat "startup-moat-$i" "$dir"
        wait_moat_ready "$pid" "$port" "$admin_port" || die "moat did not start (see $out/startup-moat-$i.log)"
        t0=$(now_us)
        moat_cli "$dir" "$admin_port" deploy examples/hello/moat.toml >"$out/deploy-$i.log" 2>&1 &
        deployer=$!
        servers+=("$deployer")
        t1=$(wait_for "$port" /hello "$pid" 300) || die "hello was not served after deploy (see $out/deploy-$i.log)"
        wait "$deployer" || die "moat deploy failed (see $out/deploy-$i.log)"
        forget "$deployer"
        cold+=("$(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100))")
        if ((i < STARTUP_RUNS)); then stop_server "$pid"; fi
    done
    for ((i = 1; i <= STARTUP_RUNS; i++)); do
        stop_server "$pid"
        t0=$(now_us)
        start_moat "startup-moat-$STARTUP_RUNS" "$dir"
        t1=$(wait_for "$port" /hello "$pid" 120) || die "moat did not serve hello after restart (see $out/startup-moat-$STARTUP_RUNS.log)"
        warm+=("$(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100))")
    done
    moat_pid="$pid" moat_port="$port" moat_dir="$dir"
    first_cold[moat]="$(median "${cold[@]}")"
    first_warm[moat]="$(median "${warm[@]}")"
    echo "moat: deploy -> 200 ${cold[*]} ms; restart -> 200 ${warm[*]} ms" >>"$out/startup.txt"
}

# ---------------------------------------------------------------------------------------------
# (b) Load with wrk. Results into the wrk_* arrays keyed "server,conns", one value per round.
# ---------------------------------------------------------------------------------------------
declare -A wrk_rps=() wrk_p50=() wrk_p99=()
socket_errors=""

to_ms() { # wrk latency like 135.00us, 1.23ms, 1.02s, 1.10m
    LC_ALL=C awk -v x="$1" 'BEGIN {
        n = x + 0; u = x; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        else if (u != "ms") { print "bad latency unit: " x > "/dev/stderr"; exit 1 }
        printf "%.3f", n }'
}

run_wrk() { # SERVER URL CONNS DURATION_S OUTFILE [WRK-OPTION...]
    local server="$1" url="$2" c="$3" d="$4" file="$5" t=$(($3 < 2 ? $3 : 2))
    wrk --latency "-t$t" "-c$c" "-d${d}s" "${@:6}" "$url" >"$file" 2>&1 ||
        { cat "$file" >&2; die "wrk failed against $server ($url)"; }
    if grep -q 'Non-2xx' "$file"; then
        cat "$file" >&2
        die "$server answered non-2xx responses under load ($file)"
    fi
    grep -q '^Requests/sec:' "$file" || { cat "$file" >&2; die "cannot parse $file"; }
    if grep -q 'Socket errors' "$file"; then
        socket_errors+="- $server c=$c: $(grep 'Socket errors' "$file" | sed 's/^ *//') ($(basename "$file"))"$'\n'
    fi
}

measure_load() { # uses order, url, spid; sets rss, rss_after and the wrk_* arrays
    local round c name
    for name in "${order[@]}"; do
        log "warming up $name (${WARMUP}s, c=16)"
        ((WARMUP == 0)) || run_wrk "$name" "${url[$name]}" 16 "$WARMUP" "$out/wrk-$name-warmup.txt"
        sleep 1
        rss[$name]="$(rss_mib "${spid[$name]}")"
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for c in $CONNS; do
            for name in "${order[@]}"; do
                log "round $round/$ROUNDS: $name, c=$c, ${DURATION}s"
                local f="$out/wrk-$name-c$c-r$round.txt"
                run_wrk "$name" "${url[$name]}" "$c" "$DURATION" "$f"
                wrk_rps[$name,$c]+="$(awk '/^Requests\/sec:/ {print $2}' "$f") "
                wrk_p50[$name,$c]+="$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")") "
                wrk_p99[$name,$c]+="$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")") "
            done
        done
    done
    for name in "${order[@]}"; do rss_after[$name]="$(rss_mib "${spid[$name]}")"; done
}

# ---------------------------------------------------------------------------------------------
# Scenarios to come. Each appends a markdown section to $extra (or returns without output).
# ---------------------------------------------------------------------------------------------
extra=""

# JSON-schema validation cost: one fresh Moat node, the `echo` example deployed twice, as
# `order-schema` (public, [input] POST + application/json + bench/schemas/order.json) and as
# `order-plain` (no [input]), both with max_body_bytes = 1 MiB. Valid bodies of 1 KiB and
# 64 KiB (bench/schemas/gen_order.py) are POSTed to both with bench/wrk/post.lua at each
# JSON_CONNS, ROUNDS rounds interleaved; the p50 difference is the cost of the validation
# (read whole, depth check, parse, validate) in front of the same guest.
scenario_json_schema() {
    ((JSON_SCHEMA)) || { log "JSON_SCHEMA=0: skipping the json-schema scenario"; return; }
    local dir="$tmp/moat-json" jdir="$tmp/json" echo_wasm="$repo/target/wasm/wasm32-wasip2/release/echo.wasm"
    local size c v round f st
    [[ -f "$echo_wasm" ]] || die "missing $echo_wasm (scripts/build-guests.sh builds it)"
    mkdir -p "$jdir" "$out/json"
    cp "$repo/bench/schemas/order.json" "$jdir/order.json"
    printf '[function]\nname = "order-schema"\ncomponent = "%s"\nroute = "/order-schema"\nauth = "public"\n\n[limits]\nmax_body_bytes = 1048576\n\n[input]\nmethods = ["POST"]\ncontent_types = ["application/json"]\nschema = "order.json"\n' \
        "$echo_wasm" >"$jdir/order-schema.toml"
    printf '[function]\nname = "order-plain"\ncomponent = "%s"\nroute = "/order-plain"\nauth = "public"\n\n[limits]\nmax_body_bytes = 1048576\n' \
        "$echo_wasm" >"$jdir/order-plain.toml"
    command -v python3 >/dev/null && command -v curl >/dev/null ||
        die "the json-schema scenario needs python3 and curl (JSON_SCHEMA=0 skips it)"
    local items=() gen
    for size in 1 64; do
        gen="$(python3 "$repo/bench/schemas/gen_order.py" $((size * 1024)) "$out/json/body-${size}k.json")" ||
            die "cannot generate the ${size} KiB body"
        items+=("${size} KiB: ${gen##*bytes, }")
    done
    cp "$jdir"/*.toml "$out/json/"

    start_moat moat-json "$dir"
    local mpid="$pid" mport="$port" madmin="$admin_port"
    wait_moat_ready "$mpid" "$mport" "$madmin" || die "moat did not start (see $out/moat-json.log)"
    for v in schema plain; do
        moat_cli "$dir" "$madmin" deploy "$jdir/order-$v.toml" >>"$out/deploy-json.log" 2>&1 ||
            die "deploy of order-$v failed (see $out/deploy-json.log)"
    done
    # Sanity: the bodies pass on both routes; an invalid one is refused only with the schema.
    for size in 1 64; do
        for v in schema plain; do
            st="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
                --data-binary "@$out/json/body-${size}k.json" "http://127.0.0.1:$mport/order-$v")"
            [[ "$st" == 200 ]] || die "POST of the ${size} KiB body to /order-$v answered $st, not 200"
        done
    done
    st="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
        --data-binary '{"order_id":"nope"}' "http://127.0.0.1:$mport/order-schema")"
    [[ "$st" == 400 ]] || die "an invalid body to /order-schema answered $st, not 400"

    declare -A j_rps=() j_p50=() j_p99=()
    for v in schema plain; do
        export BODY_FILE="$out/json/body-1k.json"
        ((WARMUP == 0)) || run_wrk "order-$v" "http://127.0.0.1:$mport/order-$v" 16 "$WARMUP" \
            "$out/json/wrk-$v-warmup.txt" -s "$repo/bench/wrk/post.lua"
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for size in 1 64; do
            export BODY_FILE="$out/json/body-${size}k.json"
            for c in $JSON_CONNS; do
                for v in schema plain; do
                    log "json-schema round $round/$ROUNDS: ${size} KiB, order-$v, c=$c, ${DURATION}s"
                    f="$out/json/wrk-$v-${size}k-c$c-r$round.txt"
                    run_wrk "order-$v ${size}KiB" "http://127.0.0.1:$mport/order-$v" "$c" "$DURATION" "$f" \
                        -s "$repo/bench/wrk/post.lua"
                    j_rps[$v,$size,$c]+="$(awk '/^Requests\/sec:/ {print $2}' "$f") "
                    j_p50[$v,$size,$c]+="$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")") "
                    j_p99[$v,$size,$c]+="$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")") "
                done
            done
        done
    done
    unset BODY_FILE
    stop_server "$mpid"

    local rows="" ps pp
    for size in 1 64; do
        for c in $JSON_CONNS; do
            ps="$(median ${j_p50[schema,$size,$c]})" pp="$(median ${j_p50[plain,$size,$c]})"
            rows+="| ${size} KiB | $c | $(fmt %.0f "$(median ${j_rps[schema,$size,$c]})") | $(fmt %.3f "$ps") / $(fmt %.2f "$(median ${j_p99[schema,$size,$c]})") | $(fmt %.0f "$(median ${j_rps[plain,$size,$c]})") | $(fmt %.3f "$pp") / $(fmt %.2f "$(median ${j_p99[plain,$size,$c]})") | $(fmt %+.0f "$(awk -v a="$ps" -v b="$pp" 'BEGIN {print (a - b) * 1000}')") |"$'\n'
            echo "json $size KiB c=$c: schema req/s ${j_rps[schema,$size,$c]}; p50 ${j_p50[schema,$size,$c]}; p99 ${j_p99[schema,$size,$c]}; plain req/s ${j_rps[plain,$size,$c]}; p50 ${j_p50[plain,$size,$c]}; p99 ${j_p99[plain,$size,$c]}" >>"$out/json/rounds.txt"
        done
    done
    extra+="
### JSON-schema validation (one Moat node, \`echo\` deployed twice: with \`[input]\` POST, application/json, \`bench/schemas/order.json\`; and without \`[input]\`)

| body | c | with schema req/s | with schema p50 / p99 (ms) | without req/s | without p50 / p99 (ms) | validation cost, p50 with − without (µs) |
|---|---|---|---|---|---|---|
${rows}
Valid bodies generated by \`bench/schemas/gen_order.py\` ($(IFS=';'; echo "${items[*]}" | sed 's/;/, /g')), POSTed with \`bench/wrk/post.lua\`; no non-2xx responses (a schema failure would be a 400 and stop the run). \`echo\` answers the body back, so both columns include reading and echoing it; the difference is Moat's body read, depth check, parse and validation. Medians of $ROUNDS × ${DURATION}s; raw outputs in \`json/\`.
"
}

# Mean instantiation time of the main Moat node, from its admin /metrics after the load runs.
instantiation_time() { # ADMIN_PORT
    local m sum count
    m="$(curl -sf "http://127.0.0.1:$1/metrics")" || { log "could not read /metrics"; return; }
    printf '%s\n' "$m" >"$out/moat-metrics.txt"
    sum="$(awk '$1 == "moat_instantiation_seconds_sum" {print $2}' <<<"$m")"
    count="$(awk '$1 == "moat_instantiation_seconds_count" {print $2}' <<<"$m")"
    [[ -n "$sum" && -n "$count" ]] || { log "no moat_instantiation_seconds_* in /metrics"; return; }
    inst_line="Mean instantiation time (main Moat node, admin \`/metrics\` after the load runs): $(fmt %.1f "$(awk -v s="$sum" -v n="$count" 'BEGIN {print (n > 0) ? s * 1e6 / n : 0}')") µs per instantiation (moat_instantiation_seconds_sum $sum / count $count, since the node's last restart)."
}
inst_line=""

# Idle RSS of one node serving 1 function, then $FUNCTIONS functions (hello deployed under
# distinct names and routes through the CLI), then after one request to each, plus req/s at
# c=16 on one route of the full table, against the same with only one function deployed.
scenario_many_functions() {
    ((FUNCTIONS > 0)) || { log "FUNCTIONS=0: skipping the many-functions scenario"; return; }
    local dir="$tmp/moat-many" mdir="$tmp/manifests" i name t0 t1 rss1 rss_n rss_hit rps1 rpsn
    mkdir -p "$mdir"
    start_moat moat-many "$dir"
    local mpid="$pid" mport="$port" madmin="$admin_port"
    wait_moat_ready "$mpid" "$mport" "$madmin" || die "moat did not start (see $out/moat-many.log)"
    for ((i = 1; i <= FUNCTIONS; i++)); do
        name="$(printf 'fn-%04d' "$i")"
        printf '[function]\nname = "%s"\ncomponent = "%s"\nroute = "/%s"\nauth = "public"\n' \
            "$name" "$wasm" "$name" >"$mdir/$name.toml"
    done
    log "many functions: deploying fn-0001"
    moat_cli "$dir" "$madmin" deploy "$mdir/fn-0001.toml" >>"$out/deploy-many.log" 2>&1 ||
        die "deploy failed (see $out/deploy-many.log)"
    wait_for "$mport" /fn-0001 "$mpid" 60 >/dev/null || die "fn-0001 not served"
    run_wrk moat-1fn "http://127.0.0.1:$mport/fn-0001" 16 "$DURATION" "$out/wrk-many-1fn-c16.txt"
    rps1="$(awk '/^Requests\/sec:/ {print $2}' "$out/wrk-many-1fn-c16.txt")"
    sleep 1
    rss1="$(rss_mib "$mpid")"
    log "many functions: deploying fn-0002..fn-$(printf '%04d' "$FUNCTIONS") through the CLI"
    t0=$(now_us)
    for ((i = 2; i <= FUNCTIONS; i++)); do
        name="$(printf 'fn-%04d' "$i")"
        moat_cli "$dir" "$madmin" deploy "$mdir/$name.toml" >>"$out/deploy-many.log" 2>&1 ||
            die "deploy of $name failed (see $out/deploy-many.log)"
        alive "$mpid" || die "the node exited while deploying (see $out/moat-many.log)"
    done
    t1=$(now_us)
    sleep 2
    rss_n="$(rss_mib "$mpid")"
    local last bad=0 st
    last="$(printf 'fn-%04d' "$FUNCTIONS")"
    for ((i = 1; i <= FUNCTIONS; i++)); do
        st="$(http_status "$mport" "$(printf '/fn-%04d' "$i")")"
        [[ "$st" == 200 ]] || bad=$((bad + 1))
    done
    ((bad == 0)) || die "$bad of $FUNCTIONS deployed functions did not answer 200"
    sleep 1
    rss_hit="$(rss_mib "$mpid")"
    local mid
    mid="$(printf 'fn-%04d' $(((FUNCTIONS + 1) / 2)))"
    run_wrk "moat-${FUNCTIONS}fn" "http://127.0.0.1:$mport/$mid" 16 "$DURATION" "$out/wrk-many-${FUNCTIONS}fn-c16.txt"
    rpsn="$(awk '/^Requests\/sec:/ {print $2}' "$out/wrk-many-${FUNCTIONS}fn-c16.txt")"
    stop_server "$mpid"
    extra+="
### Many functions (one Moat node, \`hello\` deployed $FUNCTIONS times under distinct names and routes)

| | 1 function | $FUNCTIONS functions |
|---|---|---|
| idle RSS (MiB) | $rss1 | $rss_n (after one request to each: $rss_hit) |
| req/s c=16 (one route) | $(fmt %.0f "$rps1") | $(fmt %.0f "$rpsn") (route /$mid) |

RSS per extra function: $(fmt %.1f "$(awk -v a="$rss1" -v b="$rss_n" -v n="$FUNCTIONS" 'BEGIN {print (n > 1) ? (b - a) * 1024 / (n - 1) : 0}')") KiB idle, $(fmt %.1f "$(awk -v a="$rss1" -v b="$rss_hit" -v n="$FUNCTIONS" 'BEGIN {print (n > 1) ? (b - a) * 1024 / (n - 1) : 0}')") KiB after one request each. Deploying $((FUNCTIONS - 1)) through the CLI (one \`moat deploy\` process each, sequential) took $(fmt %.1f "$(awk -v d=$((t1 - t0)) 'BEGIN {print d / 1e6}')") s ($(fmt %.0f "$(awk -v d=$((t1 - t0)) -v n=$((FUNCTIONS - 1)) 'BEGIN {print (n > 0) ? d / 1000 / n : 0}')") ms per deploy).
"
}

# ---------------------------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------------------------
declare -A label=([wasmtime]="\`wasmtime serve\` $WASMTIME_VERSION" [baseline]="bare baseline" [moat]="Moat")
declare -A rss=() rss_after=() url=() spid=()
order=(wasmtime baseline moat)

cell_rps() { fmt %.0f "$(median ${wrk_rps[$1,$2]})"; }
cell_lat() { echo "$(fmt %.2f "$(median ${wrk_p50[$1,$2]})") / $(fmt %.2f "$(median ${wrk_p99[$1,$2]})")"; }

report() {
    local c name h1="| server | first 200, cold (ms) | first 200, warm (ms) |" h2="|---|---|---|" row
    for c in $CONNS; do
        h1+=" req/s c=$c | p50 / p99 c=$c (ms) |"
        h2+="---|---|"
    done
    h1+=" idle RSS (MiB) |"
    h2+="---|"
    {
        echo "## Moat benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        echo "Commit $(commit_id), $(nproc) CPUs, load average at start $load_before, at end $(cut -d' ' -f1-3 /proc/loadavg); \`hello.wasm\` ($(($(stat -c %s "$wasm") / 1024)) KiB); wrk ${DURATION}s × $ROUNDS rounds per cell, medians; RSS after ${WARMUP}s warm-up."
        echo
        echo "$h1"
        echo "$h2"
        for name in "${order[@]}"; do
            row="| ${label[$name]} | ${first_cold[$name]} | ${first_warm[$name]} |"
            for c in $CONNS; do row+=" $(cell_rps "$name" "$c") | $(cell_lat "$name" "$c") |"; done
            row+=" ${rss[$name]} |"
            echo "$row"
        done
        echo
        echo "First 200: wasmtime serve and the baseline from process start (cold = compiling; wasmtime's warm = its compilation cache primed); Moat cold = \`moat deploy\` on a fresh node → first 200, warm = restart on the same data dir (compiled artifact cache warm) → first 200. Median of $STARTUP_RUNS."
        echo
        h1="| ratio |"
        h2="|---|"
        for c in $CONNS; do h1+=" c=$c |"; h2+="---|"; done
        echo "$h1"
        echo "$h2"
        ratio_row "Moat / wasmtime serve, req/s" moat wasmtime
        ratio_row "Moat / baseline, req/s" moat baseline
        ratio_row "baseline / wasmtime serve, req/s" baseline wasmtime
        row="| Moat p50 − baseline p50 (µs) |"
        for c in $CONNS; do
            row+=" $(fmt %+.0f "$(awk -v a="$(median ${wrk_p50[moat,$c]})" -v b="$(median ${wrk_p50[baseline,$c]})" 'BEGIN {print (a - b) * 1000}')") |"
        done
        echo "$row"
        echo
        local after=()
        for name in "${order[@]}"; do after+=("${label[$name]} ${rss_after[$name]}"); done
        echo "Idle RSS after all load runs (MiB): $(IFS=';'; echo "${after[*]}" | sed 's/;/; /g')."
        if [[ -n "$inst_line" ]]; then
            echo
            echo "$inst_line"
        fi
        if [[ -n "$socket_errors" ]]; then
            echo
            echo "wrk socket errors (requests not counted):"
            printf '%s' "$socket_errors"
        fi
        printf '%s' "$extra"
    } | tee "$out/results.md"
    {
        echo "# per-round values (req/s; p50 ms; p99 ms), in round order"
        for name in "${order[@]}"; do
            for c in $CONNS; do
                echo "$name c=$c: req/s ${wrk_rps[$name,$c]}; p50 ${wrk_p50[$name,$c]}; p99 ${wrk_p99[$name,$c]}"
            done
        done
    } >"$out/rounds.txt"
    cp "$out/results.md" "$out_root/results.md"
}

commit_id() { # short HEAD, "+ changes" if the work tree differs; "?" outside git
    local id
    id="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null)" || { echo "?"; return; }
    git -C "$repo" diff --quiet HEAD 2>/dev/null || id+=" + uncommitted changes"
    echo "$id"
}

ratio_row() { # LABEL NUM DEN
    local row="| $1 |" c
    for c in $CONNS; do
        row+=" $(fmt %.2f "$(awk -v a="$(median ${wrk_rps[$2,$c]})" -v b="$(median ${wrk_rps[$3,$c]})" 'BEGIN {print (b > 0) ? a / b : 0}')") |"
    done
    echo "$row"
}

# ---------------------------------------------------------------------------------------------
main() {
    mkdir -p "$out"
    load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
    if awk -v l="${load_before%% *}" -v n="$(nproc)" 'BEGIN {exit !(l > n / 2)}'; then
        echo "warning: load average ${load_before%% *} on $(nproc) CPUs: something else is running; expect noisy numbers" >&2
    fi
    ensure_wrk
    ensure_wasmtime
    build
    log "results go to $out"

    log "time to first 200: wasmtime serve"
    startup_wasmtime
    log "time to first 200: baseline"
    startup_baseline
    log "time to first 200: moat (deploy, then restarts)"
    startup_moat

    log "starting the servers for the load runs"
    spid[moat]="$moat_pid"
    url[moat]="http://127.0.0.1:$moat_port/hello"
    start_wasmtime serve-wasmtime
    spid[wasmtime]="$pid"
    url[wasmtime]="http://127.0.0.1:$port/hello"
    wait_for "$port" /hello "$pid" 120 >/dev/null || die "wasmtime serve did not answer"
    start_baseline serve-baseline
    spid[baseline]="$pid"
    url[baseline]="http://127.0.0.1:$port/hello"
    wait_for "$port" /hello "$pid" 120 >/dev/null || die "the baseline did not answer"

    measure_load
    instantiation_time "${moat_admin_ports[$moat_dir]}"
    for name in "${order[@]}"; do stop_server "${spid[$name]}"; done

    scenario_json_schema
    scenario_many_functions

    echo >&2
    report
    log "raw outputs in $out"
}

main "$@"
