# Shared by bench/compare.sh and bench/scale.sh (sourced, not run): five-node clusters of
# raftkv, etcd and the PySyncObj service on loopback, started, seeded, timed and stopped.
# The caller sets here, WORK, BIN, RAW; RAFTKV_ARGS and ETCD_ARGS (arrays) add options to every
# node of that system.
# shellcheck shell=bash
declare -a PID=()
declare -a RAFTKV_ARGS=("${RAFTKV_ARGS[@]}")
declare -a ETCD_ARGS=("${ETCD_ARGS[@]}")
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
        "${RAFTKV_ARGS[@]}" >>"$WORK/$s/log$i" 2>&1 &
      ;;
    etcd)
      for j in 0 1 2 3 4; do cluster="$cluster,e$j=http://127.0.0.1:$((rb + j))"; done
      etcd --name "e$i" --data-dir "$WORK/$s/$i" --log-level error \
        --listen-client-urls "http://127.0.0.1:$((hb + i))" \
        --advertise-client-urls "http://127.0.0.1:$((hb + i))" \
        --listen-peer-urls "http://127.0.0.1:$((rb + i))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((rb + i))" \
        --initial-cluster "${cluster#,}" --initial-cluster-state new "${ETCD_ARGS[@]}" \
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

# Waits (bounded: $3 seconds, 30 if not given) until node $2 serves a linearizable read; prints
# the milliseconds it took.
wait_serving() {
  local s="$1" i="$2" bound="${3:-30}" t0
  t0=$(date +%s%N)
  # Bounded by time, not only by tries: a try may itself wait up to a second.
  for _ in $(seq 1 $((bound * 100))); do
    [ $(($(date +%s%N) - t0)) -lt $((bound * 1000000000)) ] || break
    if read_ready "$s" "$i"; then
      echo $((($(date +%s%N) - t0) / 1000000))
      return 0
    fi
    sleep 0.01
  done
  log "$s: node $i did not serve a read in $bound s"
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

