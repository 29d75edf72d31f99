#!/usr/bin/env bash
# One list grown to a million values (issue 18, point 7): does APPEND stay O(1) as the list
# grows, and does GET still return the whole list? Five `raftkv node` processes on loopback;
# `raftkv bench --workload append --keys 1 --connections 64` (every APPEND goes to key "b0") in
# runs of SECONDS_PER_RUN until the list holds TARGET values. After each run: the list's length,
# that run's APPEND/s, p50 and p99. At the end, REPS linearizable GETs of the whole list through
# a follower: time and bytes. Prints a table and writes it to bench/results/biglist/summary.md.
#
#   bench/biglist.sh                      (TARGET=1000000 SECONDS_PER_RUN=10 REPS=5)
#   TARGET=100000 bench/biglist.sh        (a quick look)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
TARGET="${TARGET:-1000000}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
REPS="${REPS:-5}"
OUT="$here/bench/results/biglist"
WORK="$(mktemp -d /tmp/raftkv-biglist.XXXXXX)"
BIN="$here/target/release/raftkv"
RAW="$OUT/raw"
# shellcheck source=bench/cluster.sh
source "$here/bench/cluster.sh"
trap 'stop_all; rm -rf "$WORK"' EXIT

cargo build --release --quiet
rm -rf "$RAW" && mkdir -p "$RAW"
SYSTEM=raftkv
start_cluster raftkv
url="$(node_url raftkv 0)"
length() { curl -sf -m 60 "$url/keys/b0" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))' || echo 0; }

rows=()
before=0
for run in $(seq 1 200); do
  "$BIN" bench --endpoints "$(endpoints raftkv)" --workload append --keys 1 --connections 64 \
    --seconds "$SECONDS_PER_RUN" --warmup 0 --json >"$RAW/run-$run.json"
  after="$(length)"
  row="$(python3 - "$RAW/run-$run.json" "$before" "$after" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
before, after = int(sys.argv[2]), int(sys.argv[3])
errors = sum(r["errors"].values()) if r["errors"] else 0
print(f"| {before:,} → {after:,} | {r['ops_per_sec']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {errors} |")
PY
)"
  rows+=("$row")
  log "run $run: $row"
  before="$after"
  [ "$after" -lt "$TARGET" ] || break
done

# The whole list through a follower (linearizable: the follower asks the leader for a read index).
gets=()
for _ in $(seq 1 "$REPS"); do
  gets+=("$(curl -sf -m 120 -o /dev/null -w '%{time_total} %{size_download}' "$(node_url raftkv 1)/keys/b0")")
done
get_line="$(printf '%s\n' "${gets[@]}" | python3 -c '
import statistics, sys
runs = [l.split() for l in sys.stdin if l.strip()]
secs = sorted(float(t) for t, _ in runs)
size = int(runs[0][1])
print(f"GET of the whole list ({len(runs)} runs through a follower): median {statistics.median(secs) * 1000:.0f} ms "
      f"(min {secs[0] * 1000:.0f}, max {secs[-1] * 1000:.0f}), {size:,} bytes of JSON")')"
log "$get_line"

{
  echo "# One list of ${before} values ($(git -C "$here" rev-parse --short HEAD), $(date -u +%F), $(nproc) cores)"
  echo
  echo "APPENDs to one key at 64 connections, ${SECONDS_PER_RUN} s per run, five \`raftkv node\` processes."
  echo
  echo "| list length (before → after the run) | APPEND/s | p50 ms | p99 ms | errors |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "$get_line"
} >"$OUT/summary.md"
cat "$OUT/summary.md"
