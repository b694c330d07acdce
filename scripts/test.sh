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

step "cargo test --workspace (unit, in-process, integration, SDK interop, conformance)"
cargo test --workspace --locked -- --test-threads="${MCPGATE_TEST_THREADS:-4}"

step "all tests passed"
