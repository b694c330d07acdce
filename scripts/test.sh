#!/usr/bin/env bash
# Runs every test mcpgate has, after installing the real peers they talk to.
# This is the one test command (README, .ci/run). Works on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "install test dependencies (Node 22, conformance suite, SDKs, reference servers)"
./scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "cargo build --workspace (the tests start mcpgate and mcpgate-fixture as processes)"
cargo build --workspace --locked

# Two tiers, always both, each reported on its own. The Rust tier is every
# test that needs only Rust peers (what a plain `cargo test --workspace` runs,
# in under two minutes). The peers tier is every test marked
# `#[ignore = "peers tier: ..."]`: they need Node 22, Python, the SDKs and the
# conformance suite from tests/interop, or PostgreSQL at 127.0.0.1:5432.
threads="${MCPGATE_TEST_THREADS:-4}"
failed=()

step "Rust tier: cargo test --workspace (unit, in-process, integration against Rust peers only)"
cargo test --workspace --locked -- --test-threads="$threads" || failed+=("Rust tier")

step "peers tier: cargo test --workspace -- --ignored (conformance suite, SDK interop, server-everything, PostgreSQL)"
cargo test --workspace --locked -- --ignored --test-threads="$threads" || failed+=("peers tier")

# Fuzz smoke run (issue 14, item 13): each cargo-fuzz target in fuzz/ for a few
# seconds, so a target that no longer builds or crashes on its seeds fails CI.
# The long runs are `scripts/fuzz.sh SECONDS` (see fuzz/README.md).
step "fuzz smoke run: each cargo-fuzz target for ${MCPGATE_FUZZ_SECONDS:-20} s (scripts/fuzz.sh; needs nightly)"
cargo fmt --manifest-path fuzz/Cargo.toml -- --check || failed+=("fuzz targets' formatting")
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    ./scripts/fuzz.sh "${MCPGATE_FUZZ_SECONDS:-20}" || failed+=("fuzz smoke run")
else
    printf '\n%s\n%s\n%s\n\n' \
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' \
        '!!! FUZZING SKIPPED: no nightly toolchain (rustup toolchain list); cargo fuzz needs it.' \
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
fi

if ((${#failed[@]})); then
    step "FAILED: ${failed[*]}"
    exit 1
fi
step "all tests passed (Rust tier, peers tier, fuzz smoke run)"
