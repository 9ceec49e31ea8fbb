#!/usr/bin/env bash
# Runs every sluice test, installing what the tests need first:
#   - the wasm32-wasip1 Rust target, and the example transform plugins built with it,
#   - the Python test peers in tests/requirements.txt (boto3, the AWS CLI, moto_server, and
#     independent decoders) into ./.venv,
#   - moto's own Firehose test suite (its source distribution) into ./.test-peers,
#   - from npm's lockfile (tests/js): the JavaScript SDK v3, kinesalite (a Kinesis server) and dynalite
#     (a DynamoDB server for the Kinesis source's lease table),
#   - Debian's systemd and systemd-journal-remote packages if missing (systemd-analyze verifies
#     deploy/systemd; journalctl and real journal files test the journald source),
#   - Debian's postgresql package if missing (the PostgreSQL destination's tests run a real server),
#   - Debian's chromium if missing (the web console's tests load it in a headless browser),
#   - Debian's cmake and libcurl4-openssl-dev if missing (librdkafka, the Kafka client, is built from its
#     bundled source by the rdkafka crate),
#   - cargo-deb, built once into a cache outside the clone ($SLUICE_TOOLS, default ~/.cache/sluice-tools):
#     the packaging tests build, inspect and install (dpkg) the Debian package,
#   - tansu 0.6.0, a Kafka-protocol broker, built once into $SLUICE_TOOLS/tansu (about 11 minutes the first
#     time): the Kafka source and destination are tested against it.
# Then: the layer check (imports point down), formatting and lint checks, unit tests, and the integration tests in tests/, which drive
# the real binary with real clients against a real S3-compatible server.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Debian packages: cmake and libcurl headers (librdkafka is built from source by the rdkafka crate)"
if ! command -v cmake >/dev/null || { [ ! -f /usr/include/x86_64-linux-gnu/curl/curl.h ] && [ ! -f /usr/include/curl/curl.h ]; }; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  { $SUDO apt-get update -qq &&
    $SUDO apt-get install -y -qq --no-install-recommends cmake libcurl4-openssl-dev libssl-dev >/dev/null; } ||
    { echo "missing and could not be installed: apt-get install cmake libcurl4-openssl-dev libssl-dev" >&2; exit 1; }
fi

step "Rust target wasm32-wasip1"
rustup target add wasm32-wasip1

step "Transform plugins for wasm32-wasip1 (transforms/)"
(cd transforms && cargo build --locked --release)

step "Python test peers (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt

step "moto's Firehose test suite (.test-peers)"
MOTO_VERSION=$(sed -n 's/^moto\[server\]==//p' tests/requirements.txt)
if [ ! -d ".test-peers/moto-$MOTO_VERSION/tests/test_firehose" ]; then
  mkdir -p .test-peers
  .venv/bin/pip download --quiet --disable-pip-version-check --no-binary :all: --no-deps "moto==$MOTO_VERSION" -d .test-peers
  tar -xzf ".test-peers/moto-$MOTO_VERSION.tar.gz" -C .test-peers
fi

step "npm test peers: JavaScript SDK v3, kinesalite, dynalite (tests/js)"
command -v npm >/dev/null || { echo "npm is missing: install Node.js 20 and npm (apt-get install nodejs npm)" >&2; exit 1; }
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

step "Debian packages: systemd (systemd-analyze, journalctl), systemd-journal-remote (writes test journals)"
if ! command -v systemd-analyze >/dev/null || ! command -v journalctl >/dev/null || [ ! -x /lib/systemd/systemd-journal-remote ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  { $SUDO apt-get update -qq &&
    $SUDO apt-get install -y -qq --no-install-recommends systemd systemd-journal-remote >/dev/null; } ||
    { echo "missing and could not be installed: apt-get install systemd systemd-journal-remote" >&2; exit 1; }
fi

step "Debian packages: PostgreSQL (tests/pg.py starts a throwaway cluster with initdb and pg_ctl)"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v psql >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  { $SUDO apt-get update -qq &&
    $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null; } ||
    { echo "missing and could not be installed: apt-get install postgresql" >&2; exit 1; }
fi

step "Debian's chromium (the web console is tested in a headless browser)"
if ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  { $SUDO apt-get update -qq &&
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; } ||
    { echo "missing and could not be installed: apt-get install chromium" >&2; exit 1; }
fi

step "cargo-deb (cached in \${SLUICE_TOOLS:-~/.cache/sluice-tools})"
SLUICE_TOOLS=${SLUICE_TOOLS:-$HOME/.cache/sluice-tools}
CARGO_DEB_VERSION=3.6.3
if [ "$("$SLUICE_TOOLS/bin/cargo-deb" --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
  cargo install cargo-deb@"$CARGO_DEB_VERSION" --locked --root "$SLUICE_TOOLS"
fi
export PATH="$SLUICE_TOOLS/bin:$PATH"

step "tansu, a Kafka-protocol broker (cached in \${SLUICE_TOOLS}/tansu; tests/kafka_peer.py starts it)"
TANSU_VERSION=0.6.0
if [ "$("$SLUICE_TOOLS/tansu/bin/tansu" --version 2>/dev/null | awk '{print $2}')" != "$TANSU_VERSION" ]; then
  cargo install tansu@"$TANSU_VERSION" --locked --features dynostore --root "$SLUICE_TOOLS/tansu"
fi
export SLUICE_TOOLS

step "layers: imports point down (scripts/check-layers.py, ARCHITECTURE.md)"
python3 scripts/check-layers.py

step "cargo fmt --check and clippy"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

step "unit tests"
cargo test --locked

step "integration tests (tests/*.py against target/debug/sluice)"
cargo build --locked
.venv/bin/python -m pytest -q tests/ "$@"
