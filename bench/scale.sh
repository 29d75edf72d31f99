#!/usr/bin/env bash
# Cost curves as the data grows (issue 18), on this machine, in one run: for each system
# (raftkv: 5 `raftkv node` processes; etcd: 5 members, --quota-backend-bytes raised to 8 GiB so a
# gigabyte fits), each state size and each value size, on a fresh cluster:
#   - preload the state (`raftkv bench --preload`, values of that size, each to a key of its own);
#   - PUTs of that value size at 64 connections for SECONDS_PER_RUN, REPS times: throughput and
#     latency percentiles (medians of the runs);
#   - resident memory and data directory size of every node;
#   - restart, REPS times: kill -9 of a follower, start it again, time until it serves a
#     linearizable read;
#   - a sixth server joins (raftkv: `--join`; etcd: `member add --learner`) and catches up, by
#     snapshot where the log it needs was compacted: time to catch up and the new server's peak
#     RSS; the phases from /metrics (raftkv: the leader's build and send, the new server's receive
#     and install; etcd: the leader's send and the learner's receive of its database file, which
#     etcd streams as it is, with no build step).
# Then, raftkv at the largest state with 4 KiB values: the same PUT run with snapshots as
# configured and with snapshots off (--snapshot-every and --log-limit out of reach), to compare
# write latency with and without a snapshot of the whole state being built.
#
#   bench/scale.sh                       (SIZES="0 100M 1G" VALUES="100 4096 65536 1000000")
#   SIZES="0 10M" VALUES="4096" SYSTEMS="raftkv" bench/scale.sh    (a quick look)
#
# A state of 100-byte values is loaded only up to 100M (a gigabyte would be 10 million writes).
# Writes raw JSON to bench/results/scale/raw/, the table to bench/results/scale/summary.md and
# plots to images/scale-*.png (bench/scale_report.py). Only loopback addresses are used.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
read -r -a SIZES <<<"${SIZES:-0 100M 1G}"
read -r -a VALUES <<<"${VALUES:-100 4096 65536 1000000}"
read -r -a SYSTEMS <<<"${SYSTEMS:-raftkv etcd}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
ONOFF_SECONDS="${ONOFF_SECONDS:-120}"
# How long a restarted node may take to serve a read before the restart counts as failed: an
# etcd member restarting at 1 GB of 64 KiB values took 34 s in an earlier run.
RESTART_BOUND="${RESTART_BOUND:-180}"
REPS="${REPS:-3}"
OUT="$here/bench/results/scale"
RAW="$OUT/raw"
WORK="$(mktemp -d /tmp/raftkv-scale.XXXXXX)"
BIN="$here/target/release/raftkv"
ETCD_ARGS=(--quota-backend-bytes 8589934592 --max-request-bytes 2097152)
# shellcheck source=bench/cluster.sh
source "$here/bench/cluster.sh"
JOINER=""
trap 'stop_all; [ -n "$JOINER" ] && kill -9 "$JOINER" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

# A size with an optional K/M/G suffix (powers of 1024), in bytes.
bytes() { python3 -c 'import sys
s = sys.argv[1].upper(); m = {"K": 10, "M": 20, "G": 30}
print(int(s[:-1]) << m[s[-1]] if s[-1] in m else int(s))' "$1"; }

# The node of system $1 that leads now (by asking each), or nothing.
leader_of() {
  local s="$1" i url
  for i in 0 1 2 3 4; do
    url="$(node_url "$s" "$i")"
    if [ "$s" = raftkv ]; then
      curl -sf -m 2 "$url/admin/status" | grep -q '"role":"leader"' && { echo "$i"; return; }
    else
      curl -sf -m 2 -X POST "$url/v3/maintenance/status" -d '{}' |
        python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["header"]["member_id"] != d["leader"])' &&
        { echo "$i"; return; }
    fi
  done
}

# Waits (bounded, 30 s) until some node of system $1 leads.
wait_leader() {
  local _
  for _ in $(seq 1 300); do
    [ -n "$(leader_of "$1")" ] && return 0
    sleep 0.1
  done
  log "$1: no leader after 30 s"
}

# The value of metric $2 (with labels, exactly) on node URL $1; 0 if absent or not answering.
metric() {
  { curl -sf -m 5 "$1/metrics" || true; } | awk -v m="$2" '$1 == m {print $2; f = 1} END {if (!f) print 0}'
}

# The CPU counters of /proc/stat (all CPUs): "steal total", in ticks. Steal is time the
# hypervisor gave this virtual machine's CPUs to another: a run with much of it measured a slower
# machine.
cpu_counters() {
  awk '$1 == "cpu" {t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t; exit}' /proc/stat
}

# Steal, as a percentage of all CPU time, since counters $1 (from cpu_counters).
steal_since() {
  local s0 t0 s1 t1
  read -r s0 t0 <<<"$1"
  read -r s1 t1 <<<"$(cpu_counters)"
  awk -v s=$((s1 - s0)) -v t=$((t1 - t0)) 'BEGIN {printf "%.1f", (t > 0 ? 100 * s / t : 0)}'
}

# kill -9 of a follower of system $1, restarted at once; sets RESTART_MS to the ms until it serves
# a read, or to nothing if it did not within wait_serving's bound. (Not run in a $(...) subshell:
# the restarted node's pid must reach PID here.)
restart_follower() {
  local s="$1" lead i
  lead="$(leader_of "$s")"
  i=$(((${lead:-0} + 1) % 5))
  kill -9 "${PID[i]}"
  wait "${PID[i]}" 2>/dev/null || true
  start_node "$s" "$i"
  RESTART_MS="$(wait_serving "$s" "$i" "$RESTART_BOUND")" || RESTART_MS=""
}

# A sixth raftkv server joins and catches up (bounded, 10 min); sets JOIN to a JSON object of the
# snapshot steps.
join_raftkv() {
  local lead url t0 ms applied commit deadline caught=false
  lead="$(leader_of raftkv)"
  url="$(node_url raftkv "${lead:-0}")"
  t0=$(date +%s%N)
  "$BIN" node 18085 127.0.0.1:16005 --join "$url" --data-dir "$WORK/raftkv/joiner" \
    "${RAFTKV_ARGS[@]}" >>"$WORK/raftkv/log-joiner" 2>&1 &
  JOINER=$!
  # Bounded by the clock, not by tries: each try asks two nodes, and a node swapping or busy
  # installing may take seconds per answer (a run stood 12 minutes here counting tries).
  deadline=$(($(date +%s) + 600))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    commit=$(metric "$url" raftkv_raft_commit_index)
    applied=$(metric http://127.0.0.1:18085 raftkv_raft_last_applied)
    [ "${applied%.*}" -ge "${commit%.*}" ] 2>/dev/null && [ "${commit%.*}" -gt 0 ] && caught=true && break
    sleep 0.1
  done
  ms=$((($(date +%s%N) - t0) / 1000000))
  local j=http://127.0.0.1:18085
  JOIN="$(printf '{"caught_up":%s,"catch_up_ms":%s,"build_ms":%s,"build_bytes":%s,"send_ms":%s,"receive_ms":%s,"install_ms":%s,"install_bytes":%s,"joiner_peak_rss_kb":%s}\n' \
    "$caught" "$ms" \
    "$(metric "$url" 'raftkv_snapshot_last_duration_ms{phase="build"}')" \
    "$(metric "$url" 'raftkv_snapshot_last_bytes{phase="build"}')" \
    "$(metric "$url" 'raftkv_snapshot_last_duration_ms{phase="send"}')" \
    "$(metric "$j" 'raftkv_snapshot_last_duration_ms{phase="receive"}')" \
    "$(metric "$j" 'raftkv_snapshot_last_duration_ms{phase="install"}')" \
    "$(metric "$j" 'raftkv_snapshot_last_bytes{phase="install"}')" \
    "$(awk '$1 == "VmHWM:" {print $2}' "/proc/$JOINER/status")")"
  kill -9 "$JOINER"
  wait "$JOINER" 2>/dev/null || true
  JOINER=""
}

# A field of etcd node URL $1's status (raftIndex, raftAppliedIndex, dbSize); 0 if not answering.
etcd_status() {
  { curl -sf -m 2 -X POST "$1/v3/maintenance/status" -d '{}' || true; } | awk -v f="\"$2\":\"" '
    { i = index($0, f); if (i) { v = substr($0, i + length(f)); sub(/".*/, "", v); print v; n = 1 } }
    END { if (!n) print 0 }'
}

# The sum over all label sets of etcd metric $2 on node URL $1 (0 if absent).
etcd_metric_sum() {
  { curl -sf -m 5 "$1/metrics" || true; } | awk -v m="$2" 'index($1, m "{") == 1 || $1 == m {t += $2} END {print t + 0}'
}

# A sixth etcd member joins as a learner (etcd's way to add a server without risking the quorum)
# and catches up (bounded, 10 min): its applied index reaches the leader's last index. Sets JOIN.
join_etcd() {
  local lead url t0 ms k last applied added="" cluster="" j=http://127.0.0.1:12385 peer=http://127.0.0.1:12485
  local caught=false deadline
  lead="$(leader_of etcd)"
  url="$(node_url etcd "${lead:-0}")"
  for k in 0 1 2 3 4; do cluster="$cluster,e$k=http://127.0.0.1:$(($(raft_base etcd) + k))"; done
  # etcd refuses a reconfiguration while a member is not yet healthy (the follower restarted
  # just before): retried, bounded (30 s), keeping etcd's last answer; the catch-up time
  # starts at the attempt that succeeds.
  for _ in $(seq 1 60); do
    t0=$(date +%s%N)
    added="$(curl -s -m 10 -X POST "$url/v3/cluster/member/add" \
      -d "{\"peerURLs\":[\"$peer\"],\"isLearner\":true}" || true)"
    [[ "$added" == *'"member"'* ]] && break
    sleep 0.5
  done
  if [[ "$added" != *'"member"'* ]]; then
    JOIN="{\"caught_up\":false,\"failed\":\"member add was refused: $(echo "$added" | tr -d '"\\' | head -c 200)\"}"
    return
  fi
  etcd --name e5 --data-dir "$WORK/etcd/joiner" --log-level error \
    --listen-client-urls "$j" --advertise-client-urls "$j" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "${cluster#,},e5=$peer" --initial-cluster-state existing "${ETCD_ARGS[@]}" \
    >>"$WORK/etcd/log-joiner" 2>&1 &
  JOINER=$!
  # Bounded by the clock, not by tries: each try asks two nodes, and a node swapping or busy
  # installing may take seconds per answer (a run stood 12 minutes here counting tries).
  deadline=$(($(date +%s) + 600))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    last=$(etcd_status "$url" raftIndex)
    applied=$(etcd_status "$j" raftAppliedIndex)
    [ "$applied" -ge "$last" ] && [ "$last" -gt 0 ] && caught=true && break
    sleep 0.1
  done
  ms=$((($(date +%s%N) - t0) / 1000000))
  JOIN="$(printf '{"caught_up":%s,"catch_up_ms":%s,"send_ms":%s,"receive_ms":%s,"install_bytes":%s,"joiner_peak_rss_kb":%s}\n' \
    "$caught" "$ms" \
    "$(etcd_metric_sum "$url" etcd_network_snapshot_send_total_duration_seconds_sum | awk '{printf "%d", $1 * 1000}')" \
    "$(etcd_metric_sum "$j" etcd_network_snapshot_receive_total_duration_seconds_sum | awk '{printf "%d", $1 * 1000}')" \
    "$(etcd_status "$j" dbSize)" \
    "$(awk '$1 == "VmHWM:" {print $2}' "/proc/$JOINER/status")")"
  kill -9 "$JOINER"
  wait "$JOINER" 2>/dev/null || true
  JOINER=""
}

# One configuration: system $1, state size $2, value size $3. The PUT run and the restart are
# each done REPS times on the loaded cluster (the table shows medians); the preload and the join
# once.
measure() {
  local s="$1" size="$2" value="$3" name="$1-$2-$3" r c0 steal="" restarts="" join="null" failed=""
  SYSTEM="$s"
  log "$name: starting 5 nodes, preloading"
  start_cluster "$s"
  if ! "$BIN" bench --system "$(bench_system "$s")" --endpoints "$(endpoints "$s")" --json \
    --workload put --connections 64 --seconds 1 --warmup 0 \
    --value-bytes "$value" --preload "$(bytes "$size")" >"$RAW/$name.preload.json" \
    2>"$WORK/preload.err"; then
    # A state the system cannot take is a result too (etcd answered 500 part-way through a
    # gigabyte of 1 MB values): recorded with its reason, and the run goes on to the next cell.
    printf '{"system":"%s","size":"%s","value_bytes":%s,"preload_failed":"%s","rss_kb":[],"disk_kb":[],"restart_ms":[],"join":null}\n' \
      "$s" "$size" "$value" "$(grep -m1 . "$WORK/preload.err" | sed 's/^Error: //' | tr -d '"\\')" \
      >"$RAW/$name.nodes.json"
    echo '{}' >"$RAW/$name.preload.json"
    log "$name: preload failed: $(head -1 "$WORK/preload.err")"
    stop_all
    return
  fi
  for r in $(seq 1 "$REPS"); do
    log "$name: PUTs at 64 connections (run $r)"
    # A run the cluster cannot serve (no leader at its start: etcd lost its leader under 1 MB
    # values) is recorded as failed, with the bench's reason, and the measurement goes on.
    wait_leader "$s"
    c0="$(cpu_counters)"
    "$BIN" bench --system "$(bench_system "$s")" --endpoints "$(endpoints "$s")" --json \
      --workload put --connections 64 --seconds "$SECONDS_PER_RUN" --warmup 2 \
      --value-bytes "$value" >"$RAW/$name.r$r.bench.json" 2>"$WORK/bench.err" ||
      printf '{"failed":"%s"}\n' "$(head -1 "$WORK/bench.err" | tr -d '"')" >"$RAW/$name.r$r.bench.json"
    steal="$steal,$(steal_since "$c0")"
  done
  local rss disk
  rss="$(rss_list VmRSS | xargs | tr ' ' ,)"
  # A snapshot's temp file may be renamed while du walks the directory: du then complains and
  # exits 1, but still prints the total, which is what we want.
  disk="$(for i in 0 1 2 3 4; do { du -sk "$WORK/$s/$i" 2>/dev/null || true; } | cut -f1; done |
    xargs | tr ' ' ,)"
  for r in $(seq 1 "$REPS"); do
    log "$name: restart of a follower (run $r)"
    restart_follower "$s"
    if [ -z "$RESTART_MS" ]; then
      # Recorded, and the cell goes on: one system's failure must not end the whole run.
      failed=",\"restart_failed\":\"run $r: the killed follower did not serve a linearizable read within $RESTART_BOUND s\""
      break
    fi
    restarts="$restarts,$RESTART_MS"
  done
  log "$name: a sixth server joins"
  "join_$s"
  join="$JOIN"
  printf '{"system":"%s","size":"%s","value_bytes":%s,"steal_pct":[%s],"rss_kb":[%s],"disk_kb":[%s],"restart_ms":[%s]%s,"join":%s}\n' \
    "$s" "$size" "$value" "${steal#,}" "$rss" "$disk" "${restarts#,}" "$failed" "$join" >"$RAW/$name.nodes.json"
  stop_all
}

# Snapshots taken so far by the five raftkv nodes together, of phase $1: "build" (the whole
# state written) or "delta" (only what changed, appended to the current snapshot).
builds_all() {
  local i n=0 b
  for i in 0 1 2 3 4; do
    b=$(metric "$(node_url raftkv "$i")" "raftkv_snapshots_total{phase=\"$1\"}")
    n=$((n + ${b%.*}))
  done
  echo "$n"
}

# raftkv at state $1 with 4 KiB values: PUT latency with snapshots on ("on") and off ("off"):
# one cluster per mode, loaded once, then REPS runs of ONOFF_SECONDS each, long enough for every
# node to build at least once at a gigabyte (a node builds after a snapshot's worth of log,
# ×1.0–1.8 by node id: ~50–90 s of these writes). Raw: one JSON line per run.
snapshots_on_off() {
  local size="$1" mode lead url b0 b1 d0 d1 r c0
  SYSTEM=raftkv
  for mode in on off; do
    if [ "$mode" = off ]; then
      RAFTKV_ARGS=(--snapshot-every 1000000000000 --log-limit 1000000000)
    else
      RAFTKV_ARGS=()
    fi
    log "snapshots $mode: $size of 4 KiB values, then $REPS runs of PUTs for $ONOFF_SECONDS s"
    start_cluster raftkv
    "$BIN" bench --endpoints "$(endpoints raftkv)" --workload put --connections 64 --seconds 1 \
      --warmup 0 --value-bytes 4096 --preload "$(bytes "$size")" --json >/dev/null
    rm -f "$RAW/snapshots-$mode.bench.jsonl" "$RAW/snapshots-$mode.jsonl"
    for r in $(seq 1 "$REPS"); do
      lead="$(leader_of raftkv)"
      url="$(node_url raftkv "${lead:-0}")"
      b0=$(builds_all build)
      d0=$(builds_all delta)
      c0="$(cpu_counters)"
      "$BIN" bench --endpoints "$(endpoints raftkv)" --workload put --connections 64 \
        --seconds "$ONOFF_SECONDS" --warmup 2 --value-bytes 4096 --json |
        tr -d '\n' >>"$RAW/snapshots-$mode.bench.jsonl"
      echo >>"$RAW/snapshots-$mode.bench.jsonl"
      b1=$(builds_all build)
      d1=$(builds_all delta)
      printf '{"mode":"%s","size":"%s","run":%s,"steal_pct":%s,"builds_during_run":%s,"deltas_during_run":%s,"last_build_ms":%s,"last_delta_ms":%s}\n' \
        "$mode" "$size" "$r" "$(steal_since "$c0")" "$((b1 - b0))" "$((d1 - d0))" \
        "$(metric "$url" 'raftkv_snapshot_last_duration_ms{phase="build"}')" \
        "$(metric "$url" 'raftkv_snapshot_last_duration_ms{phase="delta"}')" \
        >>"$RAW/snapshots-$mode.jsonl"
      tail -1 "$RAW/snapshots-$mode.jsonl" >&2
    done
    stop_all
  done
  RAFTKV_ARGS=()
}

# Sequential write rate of the disk under $WORK, in MB/s: 1 GiB, fdatasync'ed (a smaller write
# measures the host's write cache: 256 MiB went at 1,100 MB/s where 1 GiB went at 78). Steal
# shows a CPU-starved run but not a slower disk: in a run whose snapshot phases came out 3-6x
# slower than in an earlier one, with little steal, 1 GiB was written at 71-138 MB/s.
disk_probe() {
  dd if=/dev/zero of="$WORK/disk-probe" bs=16M count=64 conv=fdatasync 2>&1 |
    awk '/copied/ {printf "%.0f", $(NF-1) * ($NF == "GB/s" ? 1000 : 1)}'
  rm -f "$WORK/disk-probe"
}

install
# RESUME=1 keeps the raw results of an interrupted run and measures only the cells it lacks.
[ -n "${RESUME:-}" ] || rm -rf "$RAW"
mkdir -p "$RAW"
[ -z "${RESUME:-}" ] ||
  echo "$(date -u +%FT%TZ) at $(git -C "$here" rev-parse --short HEAD) (disk $(disk_probe) MB/s)" >>"$RAW/resumed"
[ -f "$RAW/machine.json" ] || {
  echo "{\"cpu\": \"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)\","
  echo " \"cores\": $(nproc), \"mem_gb\": $(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo),"
  echo " \"disk_write_mb_s\": $(disk_probe),"
  echo " \"etcd\": \"$(etcd --version | awk '/etcd Version/ {print $3}')\","
  echo " \"raftkv\": \"$(git -C "$here" rev-parse --short HEAD)\", \"date\": \"$(date -u +%FT%TZ)\"}"
} >"$RAW/machine.json"
for value in "${VALUES[@]}"; do
  for size in "${SIZES[@]}"; do
    [ "$value" -lt 4096 ] && [ "$(bytes "$size")" -gt $((100 << 20)) ] && continue
    for s in "${SYSTEMS[@]}"; do
      [ -f "$RAW/$s-$size-$value.nodes.json" ] || measure "$s" "$size" "$value"
    done
  done
done
if [[ " ${SYSTEMS[*]} " == *" raftkv "* ]] && [ ! -f "$RAW/snapshots-off.jsonl" ]; then
  snapshots_on_off "${SIZES[-1]}"
fi
python3 "$here/bench/scale_report.py" "$OUT" "$here/images"
log "done: $OUT/summary.md"
