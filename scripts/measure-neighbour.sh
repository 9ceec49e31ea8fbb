#!/usr/bin/env bash
# A hostile plugin's neighbour (issue #9): durable ingest and delivery of a healthy pipeline (the
# passthrough plugin) while another pipeline's plugin misbehaves at default limits (1,000 ms timeout,
# 3 retries) and a producer keeps feeding it. Prints a Markdown table for BENCHMARKS.md.
#
#   cargo build --release && (cd transforms && cargo build --release) && scripts/measure-neighbour.sh
#   SECONDS_PER_CASE=30 scripts/measure-neighbour.sh none infinite_loop.wat      # chosen fixtures
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SLUICE_BIN:-target/release/sluice}
LOAD=target/release/sluice
SECS=${SECONDS_PER_CASE:-15}
PLUGINS=transforms/target/wasm32-wasip1/release
FIXTURES=transforms/fixtures
port=4650
echo "| hostile neighbour | healthy pipeline: acknowledged records/s | delivered end to end records/s |"
echo "|---|---|---|"
ALL="none infinite_loop.wat grow_memory.wat trap.wat garbage.wat drops_record_id.wat duplicates_record_id.wat"
for fixture in ${@:-$ALL}; do
  work=$(mktemp -d)
  hostile_module="$PWD/$PLUGINS/passthrough.wasm"
  [ "$fixture" = none ] || hostile_module="$PWD/$FIXTURES/$fixture"
  cat > "$work/sluice.yaml" <<YAML
storage: { dir: $work/var }
pipelines:
  - name: healthy
    buffering: { size_mb: 5, interval_seconds: 2 }
    processors: [ { wasm: { module: $PWD/$PLUGINS/passthrough.wasm } } ]
    destination: { local: { path: $work/healthy, compression: ZSTD, append_delimiter: true } }
  - name: hostile
    buffering: { size_mb: 1, interval_seconds: 1 }
    processors: [ { wasm: { module: $hostile_module } } ]
    destination: { local: { path: $work/hostile } }
YAML
  "$BIN" run --config "$work/sluice.yaml" --listen "127.0.0.1:$port" > "$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.1; done
  # Feed the hostile pipeline continuously: a 500-record batch every 0.2 s.
  "$LOAD" bench ingest --endpoint "http://127.0.0.1:$port" --stream hostile --seconds $((SECS + 5)) \
      --connections 1 --drain-timeout-seconds 0 > /dev/null 2>&1 &
  feeder=$!
  sleep 2
  out=$("$LOAD" bench ingest --endpoint "http://127.0.0.1:$port" --stream healthy --seconds "$SECS" \
      --connections 8 --drain-timeout-seconds 30 2>&1)
  acked=$(echo "$out" | grep -o '= [0-9]* records/s' | head -1 | tr -dc 0-9)
  e2e=$(echo "$out" | grep -o 'end-to-end [0-9]* records/s' | tr -dc 0-9)
  echo "| $fixture | $acked | ${e2e:-not drained} |"
  kill "$feeder" 2>/dev/null || true
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$work"
  port=$((port + 1))
done
