#!/usr/bin/env bash
# Runs Moat's fuzz targets one after another for MINUTES each, keeping what they learn in
# fuzz/corpus/<target>/ (seeded from fuzz/seeds/<target>/), and reports per target the
# executions, the corpus size and any crash, timeout or OOM input. Exits 1 if any target
# found one. See fuzz/README.md.
#
#   fuzz/run.sh MINUTES [TARGET...]     (default: every target)
#
# Environment:
#   FUZZ_SANITIZER   address (default) or none; address falls back to none if it cannot build
#   FUZZ_TIMEOUT     seconds one input may take before it counts as a finding (default 30)
#   FUZZ_ARGS        extra libFuzzer flags, e.g. "-max_len=16384 -dict=..."
#   MOAT_FUZZ_KNOWN  known-finding ids a target should look past (see fuzz/README.md)
set -euo pipefail

ALL_TARGETS=(manifest validate frontdoor schema_compile)

usage() {
    echo "usage: $0 MINUTES [TARGET...]   targets: ${ALL_TARGETS[*]}" >&2
    exit 2
}

[[ $# -ge 1 && $1 =~ ^[1-9][0-9]*$ ]] || usage
minutes=$1
shift
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "unknown target \`$t\`" >&2; usage; }
done

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$fuzz_dir"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module, ...). The
# machines have only stable rustc; RUSTC_BOOTSTRAP=1 lets stable accept them.
export RUSTC_BOOTSTRAP=1

sanitizer=${FUZZ_SANITIZER:-address}
build() {
    # --debug-assertions: overflow checks and debug_assert! are findings too.
    cargo fuzz build --sanitizer "$1" --debug-assertions
}
echo "== building all targets (sanitizer: $sanitizer)"
if ! build "$sanitizer"; then
    # A compile error fails both ways; only a build that works without the sanitizer says
    # the sanitizer is what does not work here.
    [[ $sanitizer != none && -z ${FUZZ_SANITIZER:-} ]] || exit 1
    echo "== the $sanitizer build failed; trying without a sanitizer" >&2
    build none
    echo "== WARNING: the $sanitizer sanitizer does not build here; fuzzing without one" >&2
    sanitizer=none
fi

# Run the binaries cargo fuzz built rather than `cargo fuzz run`, which would rebuild if a
# source changed while earlier targets ran.
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="$fuzz_dir/target/$host/release"
seconds=$((minutes * 60))
timeout=${FUZZ_TIMEOUT:-30}
read -r -a extra_args <<<"${FUZZ_ARGS:-}"

declare -A executions corpus_files corpus_bytes findings
failed=0
for t in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$t"
    artifacts="$fuzz_dir/artifacts/$t"
    log="$artifacts/last-run.log"
    mkdir -p "$corpus" "$artifacts"
    stamp=$(mktemp)
    echo "== $t: fuzzing for $minutes min (log: ${log#"$fuzz_dir"/})"
    set +e
    "$bin_dir/$t" "$corpus" "$fuzz_dir/seeds/$t" \
        -artifact_prefix="$artifacts/" \
        -max_total_time="$seconds" \
        -timeout="$timeout" \
        -print_final_stats=1 \
        "${extra_args[@]}" >"$log" 2>&1
    status=$?
    set -e
    # Keep the corpus small: only inputs that add coverage survive the merge.
    before=$(find "$corpus" -type f | wc -l)
    merged=$(mktemp -d "$fuzz_dir/corpus/.$t.XXXXXX")
    # A corpus input that now crashes (the code changed since it was saved) is a finding too.
    if "$bin_dir/$t" -merge=1 -artifact_prefix="$artifacts/merge-" "$merged" "$corpus" \
        >>"$log" 2>&1; then
        rm -rf "$corpus"
        mv "$merged" "$corpus"
    else
        rm -rf "$merged"
    fi
    new=$(find "$artifacts" -maxdepth 1 -type f \
        \( -name '*crash-*' -o -name '*timeout-*' -o -name '*oom-*' -o -name '*leak-*' \) \
        -newer "$stamp" | sort)
    rm -f "$stamp"

    executions[$t]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    corpus_files[$t]="$(find "$corpus" -type f | wc -l) (from $before before merge)"
    corpus_bytes[$t]=$(find "$corpus" -type f -printf '%s\n' | awk '{n += $1} END {print n + 0}')
    if [[ -n $new ]]; then
        findings[$t]=$(echo "$new" | wc -l)
        failed=1
        echo "-- $t FOUND $(echo "$new" | wc -l) input(s):"
        if grep -q 'panicked at' "$log"; then
            # The panic line and its message, without the backtrace.
            awk '/panicked at/ {p = 1} p && /^(stack backtrace:|note: |==)/ {exit} p' "$log" | head -6
        else
            grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$log" || true
        fi
        while read -r f; do
            echo "   ${f#"$fuzz_dir"/} ($(stat -c %s "$f") bytes)"
            echo "   hex: $(head -c 256 "$f" | xxd -p | tr -d '\n')$([[ $(stat -c %s "$f") -gt 256 ]] && echo ...)"
            echo "   reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer -a $t ${f#"$fuzz_dir"/}"
        done <<<"$new"
    elif [[ $status -ne 0 ]]; then
        findings[$t]="exit $status, no artifact"
        failed=1
        echo "-- $t exited with $status and left no artifact; see ${log#"$fuzz_dir"/}" >&2
    else
        findings[$t]=0
    fi
done

echo
echo "== summary ($minutes min per target, sanitizer: $sanitizer${MOAT_FUZZ_KNOWN:+, known: $MOAT_FUZZ_KNOWN})"
printf '%-15s %14s  %-28s %12s  %s\n' target executions "corpus files" "corpus bytes" findings
for t in "${targets[@]}"; do
    printf '%-15s %14s  %-28s %12s  %s\n' "$t" "${executions[$t]:-?}" "${corpus_files[$t]}" \
        "${corpus_bytes[$t]}" "${findings[$t]}"
done
exit "$failed"
