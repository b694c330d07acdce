#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after another, each for a given
# time, and prints executions and crashes per target. Works on a fresh clone:
# it needs the nightly toolchain and installs cargo-fuzz from crates.io when
# it is missing.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Environment:
#   FUZZ_SANITIZER  none (default) or address. The code under test forbids
#                   `unsafe`, so the sanitizer mostly costs speed; what we hunt
#                   are panics, overflows and hangs.
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (default 10).
#
# Debug assertions are on, so an arithmetic overflow is a crash. New inputs the
# fuzzer finds go to fuzz/work/<target>/ (ignored by git); the seeds in
# fuzz/corpus/<target>/ are only read. A crash stops its target and leaves the
# input in fuzz/artifacts/<target>/; reproduce it with
#   cd fuzz && cargo +nightly fuzz run -s none -a <target> artifacts/<target>/<file>
# Exit status: 0 when no target crashed, 1 when one did, 2 on a setup problem.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-60}"
if [[ $# -gt 0 ]]; then shift; fi
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [[ "$secs" -eq 0 ]]; then
    echo "fuzz.sh: SECONDS_PER_TARGET must be a positive whole number, not '$secs'" >&2
    exit 2
fi

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz.sh: the nightly toolchain is not installed (rustup toolchain list); cargo fuzz needs it" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

# The fuzz workspace uses the main workspace's locked versions: its lock file
# (ignored by git) starts as a copy of ../Cargo.lock, and cargo adds only what
# the fuzz targets need on top (libfuzzer-sys).
cp ../Cargo.lock Cargo.lock

flags=(--sanitizer "${FUZZ_SANITIZER:-none}" --debug-assertions)
timeout="${FUZZ_TIMEOUT:-10}"

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "fuzz.sh: building (${flags[*]})"
if [[ ${#targets[@]} -eq 1 ]]; then
    cargo +nightly fuzz build "${flags[@]}" "${targets[0]}"
else
    cargo +nightly fuzz build "${flags[@]}"
fi

mkdir -p work/logs
rows=()
crashed=0
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "corpus/$t"
    log="work/logs/$t.log"
    extra=()
    if [[ -f "dict/$t.dict" ]]; then extra+=("-dict=dict/$t.dict"); fi
    echo "fuzz.sh: $t for ${secs}s (log: fuzz/$log)"
    start=$(date +%s)
    rc=0
    cargo +nightly fuzz run "${flags[@]}" "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout="$timeout" -print_final_stats=1 \
        "${extra[@]}" >"$log" 2>&1 || rc=$?
    took=$(($(date +%s) - start))
    execs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$log" | tail -n 1)
    if [[ -z "$execs" ]]; then
        # A crash ends the run before the final stats; take the last status line.
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    fi
    execs="${execs:-0}"
    if [[ $rc -eq 0 ]]; then
        crashes=0
        note=""
    else
        crashes=1
        crashed=1
        artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/Test unit written to //')
        note="${artifact:-see fuzz/$log}"
        echo "fuzz.sh: $t CRASHED (exit $rc): $note" >&2
        grep -m 3 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" >&2 || true
    fi
    rows+=("$(printf '%-12s %8ss %14s %10s %8s  %s' "$t" "$took" "$execs" \
        "$((execs / (took > 0 ? took : 1)))" "$crashes" "$note")")
done

printf '\n%-12s %9s %14s %10s %8s  %s\n' target time executions execs/s crashes artifact
printf '%s\n' "${rows[@]}"
exit "$crashed"
