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
declare -a PID=()
SYSTEM=""

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if ! command -v etcd >/dev/null || ! command -v curl >/dev/null; then
    $sudo apt-get update -qq && $sudo apt-get install -y -qq etcd-server curl >/dev/null
  fi
  # Debian's package starts a single-node etcd on 2379/2380 as a service where systemd runs;
  # ours use other ports, so it does not matter, but it would take CPU: stop it if it runs.
  $sudo systemctl stop etcd >/dev/null 2>&1 || true
  python3 -c 'import pysyncobj, matplotlib' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check pysyncobj matplotlib ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages pysyncobj matplotlib
  cargo build --release --quiet
}

# Ports per system: HTTP (client) base and Raft (peer) base; node i adds i.
http_base() { case "$1" in raftkv) echo 18080 ;; etcd) echo 12380 ;; pysyncobj) echo 18180 ;; esac; }
raft_base() { case "$1" in raftkv) echo 16000 ;; etcd) echo 12480 ;; pysyncobj) echo 16180 ;; esac; }
bench_system() { [ "$1" = etcd ] && echo etcd || echo raftkv; }

# HTTP URL of node $2 of system $1, and all five comma-separated.
node_url() { echo "http://127.0.0.1:$(($(http_base "$1") + $2))"; }
endpoints() {
  local s="$1" i out=""
  for i in 0 1 2 3 4; do out="$out,$(node_url "$s" "$i")"; done
  echo "${out#,}"
}

# Starts node $2 of system $1 in the background; its pid goes to PID[$2].
start_node() {
  local s="$1" i="$2" hb rb j peers="" cluster=""
  hb="$(http_base "$s")"
  rb="$(raft_base "$s")"
  for j in 0 1 2 3 4; do [ "$j" = "$i" ] || peers="$peers 127.0.0.1:$((rb + j))"; done
  mkdir -p "$WORK/$s"
  case "$s" in
    raftkv)
      # shellcheck disable=SC2086
      "$BIN" node $((hb + i)) 127.0.0.1:$((rb + i)) $peers --data-dir "$WORK/$s/$i" \
        >>"$WORK/$s/log$i" 2>&1 &
      ;;
    etcd)
      for j in 0 1 2 3 4; do cluster="$cluster,e$j=http://127.0.0.1:$((rb + j))"; done
      etcd --name "e$i" --data-dir "$WORK/$s/$i" --log-level error \
        --listen-client-urls "http://127.0.0.1:$((hb + i))" \
        --advertise-client-urls "http://127.0.0.1:$((hb + i))" \
        --listen-peer-urls "http://127.0.0.1:$((rb + i))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((rb + i))" \
        --initial-cluster "${cluster#,}" --initial-cluster-state new \
        >>"$WORK/$s/log$i" 2>&1 &
      ;;
    pysyncobj)
      # shellcheck disable=SC2086
      python3 "$here/bench/pysyncobj_kv.py" $((hb + i)) 127.0.0.1:$((rb + i)) $peers \
        --data-dir "$WORK/$s/$i" >>"$WORK/$s/log$i" 2>&1 &
      ;;
  esac
  PID[i]=$!
}

stop_all() {
  local p
  for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
  PID=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

# A linearizable read of key "ready" through node $2 (written by `seed`); exit status says if
# it was answered.
read_ready() {
  local s="$1" i="$2" url
  url="$(node_url "$s" "$i")"
  if [ "$s" = etcd ]; then
    curl -sf -m 1 -X POST "$url/v3/kv/range" -d '{"key":"cmVhZHk="}' | grep -q '"kvs"'
  else
    curl -sf -m 1 "$url/keys/ready" >/dev/null
  fi
}

# Writes key "ready" through any node, retrying until one acknowledges it (bounded).
seed() {
  local s="$1" i url
  for _ in $(seq 1 300); do
    for i in 0 1 2 3 4; do
      url="$(node_url "$s" "$i")"
      if [ "$s" = etcd ]; then
        curl -sf -m 2 -X POST "$url/v3/kv/put" -d '{"key":"cmVhZHk=","value":"eA=="}' >/dev/null && return 0
      else
        curl -sf -m 2 -X POST "$url/keys/ready" -H 'Content-Type: application/json' \
          -d '{"type":"PUT","value":["x"]}' >/dev/null && return 0
      fi
    done
    sleep 0.1
  done
  log "$s: no node acknowledged a write in 30 s"
  return 1
}

# Waits (bounded) until node $2 serves a linearizable read; prints the milliseconds it took.
wait_serving() {
  local s="$1" i="$2" t0
  t0=$(date +%s%N)
  for _ in $(seq 1 3000); do
    if read_ready "$s" "$i"; then
      echo $((($(date +%s%N) - t0) / 1000000))
      return 0
    fi
    sleep 0.01
  done
  log "$s: node $i did not serve a read in 30 s"
  return 1
}

start_cluster() {
  local s="$1" i
  rm -rf "${WORK:?}/$s"
  for i in 0 1 2 3 4; do start_node "$s" "$i"; done
  seed "$s"
  for i in 0 1 2 3 4; do wait_serving "$s" "$i" >/dev/null; done
}

pids() { local IFS=,; echo "${PID[*]}"; }

# Sum over the five processes of: CPU ticks (utime+stime, 1/100 s), and peak / current RSS (kB).
cpu_ticks() {
  local p t=0
  for p in "${PID[@]}"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
rss_list() {
  local p field="$1" out=""
  for p in "${PID[@]}"; do out="$out $(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status")"; done
  echo "$out"
}

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
