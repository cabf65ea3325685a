#!/usr/bin/env bash
# The test command (README): lint, then every test tier.
# Privileged tests need root; under CI=true they fail rather than skip when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --release --locked --no-fail-fast -- --test-threads="${STRATA_TEST_THREADS:-2}"
