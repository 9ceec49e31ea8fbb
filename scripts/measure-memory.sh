#!/usr/bin/env bash
# Peak resident memory (VmHWM) of the daemon under durable Direct PUT load, for 1, 500 and 5,000
# partitions and buffers of 1 MiB and 128 MiB (issue #9). Prints a Markdown table for BENCHMARKS.md.
#
#   cargo build --release && scripts/measure-memory.sh            # every case, 20 s of load each
#   SECONDS_PER_CASE=10 scripts/measure-memory.sh 500             # one partition count
#
# One partition is a plain pipeline; more use jq metadata extraction on `user_id` and a partitioned
# prefix. Delivery goes to a local directory with GZIP, 4 uploads at once (the default).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/sluice                 # the load generator
DAEMON=${SLUICE_BIN:-target/release/sluice}  # the daemon measured
SECS=${SECONDS_PER_CASE:-20}
PARTS=("${@:-1 500 5000}")
[ -x "$BIN" ] || { echo "missing $BIN: run cargo build --release" >&2; exit 1; }
port=4611
echo "| partitions | size_mb | bound (README formula) | VmHWM | records/s acknowledged |"
echo "|---|---|---|---|---|"
for size in 1 128; do
  for parts in ${PARTS[@]}; do
    work=$(mktemp -d)
    if [ "$parts" -eq 1 ]; then
      processing=""
      prefix='bench/'
    else
      processing="processors: [ { metadata_extraction: { query: '{p: (.user_id % $parts | tostring)}' } } ]
    dynamic_partitioning: { enabled: true, max_active_partitions: $parts }"
      prefix='p=!{partitionKeyFromQuery:p}/'
    fi
    cat > "$work/sluice.yaml" <<YAML
storage: { dir: $work/var, max_bytes: 20GiB }
pipelines:
  - name: bench
    buffering: { size_mb: $size, interval_seconds: 60 }
    $processing
    destination:
      local: { path: $work/data, prefix: "$prefix", error_output_prefix: "errors/", compression: GZIP }
YAML
    "$DAEMON" run --config "$work/sluice.yaml" --listen "127.0.0.1:$port" > "$work/log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.1; done
    rate=$("$BIN" bench ingest --endpoint "http://127.0.0.1:$port" --stream bench --seconds "$SECS" \
             --connections 8 --bodies 20 --drain-timeout-seconds 1 2>&1 | grep -o 'acknowledged[^,]*' | head -1 || true)
    hwm=$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$pid/status")
    kill -TERM "$pid"; wait "$pid" || true
    bound=$(( 64 + size * 6 + 8 + 4 * 5 * (size < 8 ? size : 8) ))
    echo "| $parts | $size | $bound MiB | $hwm | ${rate:-?} |"
    rm -rf "$work"
    port=$((port + 1))
  done
done
