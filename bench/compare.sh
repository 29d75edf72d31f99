#!/usr/bin/env bash
# Side-by-side benchmark, on this machine, in one run: a 5-node raftkv cluster (per-process,
# fsync on), a 5-member etcd cluster (Debian's etcd-server, default durability, its JSON gateway)
# and a 5-node PySyncObj service of the assignment's API (bench/pysyncobj_kv.py), one system at
# a time, all driven by `raftkv bench` with the same workloads. Each figure is measured REPS times
# (default 3) and reported as the median; failover is timed FAILOVERS times (default 5).
# The load runs go in rounds: round r starts a fresh cluster of each system in turn and runs
# every workload once, so each system's three samples are spread over the whole run. The host's
# speed drifts (whole runs on our VM differed by up to 1.5x for etcd and 1.9x for raftkv in CPU
# per write); measured one system after another, drift would land on one system and move the
# ratios.
#
#   bench/compare.sh [SYSTEM...]        (default: raftkv etcd pysyncobj)
#
# Writes raw JSON to bench/results/raw/, the table to bench/results/summary.md, the README's short
# table, and plots to bench/results/*.png and images/bench-*.png (bench/report.py). Only loopback
# addresses are used.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
REPS="${REPS:-3}"
FAILOVERS="${FAILOVERS:-5}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-5}"
SYSTEMS=("${@:-raftkv etcd pysyncobj}")
read -r -a SYSTEMS <<<"${SYSTEMS[*]}"
OUT="$here/bench/results"
RAW="$OUT/raw"
WORK="$(mktemp -d /tmp/raftkv-compare.XXXXXX)"
BIN="$here/target/release/raftkv"
# shellcheck source=bench/cluster.sh
source "$here/bench/cluster.sh"
trap 'stop_all; rm -rf "$WORK"' EXIT

# fsyncs so far, summed over the five nodes (from each one's Prometheus metrics). PySyncObj keeps
# its journal in a memory-mapped file and never fsyncs it per entry: 0.
fsyncs() {
  local s="$1" i n=0 url
  [ "$s" = pysyncobj ] && { echo 0; return; }
  for i in 0 1 2 3 4; do
    url="$(node_url "$s" "$i")/metrics"
    if [ "$s" = raftkv ]; then
      n=$((n + $(curl -sf -m 5 "$url" | awk '$1 == "raftkv_raft_wal_fsyncs_total" {s += $2} END {print s + 0}')))
    else
      # etcd fsyncs its WAL per Ready batch and its bbolt backend per commit.
      n=$((n + $(curl -sf -m 5 "$url" | awk '$1 == "etcd_disk_wal_fsync_duration_seconds_count" ||
        $1 == "etcd_disk_backend_commit_duration_seconds_count" {s += $2} END {printf "%d", s}')))
    fi
  done
  echo "$n"
}

run_bench() {
  local name="$1"
  shift
  "$BIN" bench --system "$(bench_system "$SYSTEM")" --endpoints "$(endpoints "$SYSTEM")" \
    --json "$@" >"$RAW/$SYSTEM-$name.json"
}

# Round $2 of the load runs on a fresh cluster of system $1: every workload once. Idle RSS is
# read in round 1, peak RSS after the last round.
measure_load() {
  local s="$1" rep="$2" c w cpu0 cpu1 f0 f1
  SYSTEM="$s"
  log "$s: round $rep, starting 5 nodes"
  start_cluster "$s"
  sleep 2
  if [ "$rep" = 1 ]; then
    echo "{\"system\":\"$s\",\"idle_rss_kb\":[$(rss_list VmRSS | xargs | tr ' ' ,)]}" >"$RAW/$s-idle.json"
  fi
  for c in 1 16 64 256; do
    log "$s: put, $c connections (run $rep)"
    cpu0=$(cpu_ticks)
    f0=$(fsyncs "$s")
    run_bench "put-c$c-r$rep" --workload put --connections "$c" --seconds "$SECONDS_PER_RUN" --warmup 1
    cpu1=$(cpu_ticks)
    f1=$(fsyncs "$s")
    # Server CPU and fsyncs over warm-up + run; the JSON has the measured ops of the run only,
    # so report.py scales by the measured share of the time.
    echo "{\"cpu_ticks\":$((cpu1 - cpu0)),\"fsyncs\":$((f1 - f0)),\"seconds\":$((SECONDS_PER_RUN + 1))}" \
      >"$RAW/$s-put-c$c-r$rep.server.json"
  done
  for w in append get-leader get-follower get-local mixed; do
    [ "$s" = etcd ] && [ "$w" = append ] && continue
    log "$s: $w, 64 connections (run $rep)"
    run_bench "$w-c64-r$rep" --workload "$w" --connections 64 --seconds "$SECONDS_PER_RUN" --warmup 1
  done
  if [ "$rep" = "$REPS" ]; then
    echo "{\"system\":\"$s\",\"load_peak_rss_kb\":[$(rss_list VmHWM | xargs | tr ' ' ,)]}" >"$RAW/$s-load.json"
  fi
  stop_all
}

# Failovers, then catch-ups each followed by a restart, on one fresh cluster of system $1.
measure_faults() {
  local s="$1" rep ms i
  SYSTEM="$s"
  log "$s: faults, starting 5 nodes"
  start_cluster "$s"
  for rep in $(seq 1 "$FAILOVERS"); do
    log "$s: failover $rep"
    run_bench "failover-r$rep" --workload put --connections 16 --seconds 6 --warmup 1 \
      --fault failover --pids "$(pids)"
    i=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fault"]["node"])' \
      "$RAW/$s-failover-r$rep.json")
    wait "${PID[i]}" 2>/dev/null || true
    start_node "$s" "$i"
    wait_serving "$s" "$i" >/dev/null
  done
  for rep in $(seq 1 "$REPS"); do
    log "$s: catch-up $rep"
    run_bench "catchup-r$rep" --workload put --connections 64 --fault catch-up --pids "$(pids)"
    # Restart-to-serving: kill -9 a follower, start it again, time until it serves a read.
    i=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fault"]["node"])' \
      "$RAW/$s-catchup-r$rep.json")
    kill -9 "${PID[i]}"
    wait "${PID[i]}" 2>/dev/null || true
    start_node "$s" "$i"
    ms=$(wait_serving "$s" "$i")
    echo "{\"restart_to_serving_ms\":$ms}" >"$RAW/$s-restart-r$rep.json"
  done
  stop_all
}

raw_fsync_rate() {
  python3 - "$WORK" <<'PY' >"$RAW/disk.json"
import json, os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
rates = []
for _ in range(3):
    n, t = 0, time.monotonic()
    while time.monotonic() - t < 1.0:
        os.write(fd, b"x" * 4096)
        os.fsync(fd)
        n += 1
    rates.append(n / (time.monotonic() - t))
os.close(fd)
os.unlink(path)
print(json.dumps({"fsyncs_per_sec": sorted(rates)[1], "write_bytes": 4096}))
PY
}

machine() {
  {
    echo "{\"cpu\": \"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)\","
    echo " \"cores\": $(nproc), \"mem_gb\": $(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo),"
    echo " \"kernel\": \"$(uname -r)\", \"fs\": \"$(df -T "$WORK" | awk 'NR == 2 {print $2}')\","
    echo " \"etcd\": \"$(etcd --version | awk '/etcd Version/ {print $3}')\","
    echo " \"pysyncobj\": \"$(python3 -c 'from pysyncobj.version import VERSION; print(VERSION)' 2>/dev/null || echo '?')\","
    echo " \"raftkv\": \"$(git -C "$here" rev-parse --short HEAD)\", \"date\": \"$(date -u +%FT%TZ)\"}"
  } >"$RAW/machine.json"
}

install
# One run, one set of results: raw files of an earlier run (other systems, or more REPS) would
# otherwise be mixed into the medians and the machine line would describe only this run.
rm -rf "$RAW"
mkdir -p "$RAW"
machine
raw_fsync_rate
for rep in $(seq 1 "$REPS"); do
  for s in "${SYSTEMS[@]}"; do measure_load "$s" "$rep"; done
done
for s in "${SYSTEMS[@]}"; do measure_faults "$s"; done
python3 "$here/bench/report.py" "$OUT" "$here/images" "$here/README.md"
log "done: $OUT/summary.md"
