#!/usr/bin/env bash
# Runs every sluice test, installing what the tests need first:
#   - the wasm32-wasip1 Rust target, and the example transform plugins built with it,
#   - the Python test peers in tests/requirements.txt (boto3, the AWS CLI, moto_server, and
#     independent decoders) into ./.venv.
# Then: formatting and lint checks, unit tests, and the integration tests in tests/, which drive
# the real binary with real clients against a real S3-compatible server.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Rust target wasm32-wasip1"
rustup target add wasm32-wasip1

step "Transform plugins for wasm32-wasip1 (transforms/)"
(cd transforms && cargo build --locked --release)

step "Python test peers (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt

step "cargo fmt --check and clippy"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

step "unit tests"
cargo test --locked

step "integration tests (tests/*.py against target/debug/sluice)"
cargo build --locked
.venv/bin/python -m pytest -q tests/ "$@"
