#!/usr/bin/env bash
# Regenerates the lab screenshots in images/ from a real run: starts `raftkv lab` in a 120x40 tmux
# terminal on spare ports, drives it through the control API and keys, and captures the screen.
# Needs tmux and python3 with rich and cairosvg (pip install rich cairosvg).
# `images/regenerate.sh stepped` re-takes only the stepped election (README's lab section);
# `images/regenerate.sh partition` only the partition screenshot at the top of README;
# `images/regenerate.sh exercises` only the transcripts of two exercises Report.md quotes;
# `images/regenerate.sh record` only the recorder's pictures: the safety pane, a replay, and the
# Lamport diagram and timeseries exported from the recorded trace.
set -euo pipefail
only="${1:-all}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release -q
bin="$root/target/release/raftkv"
sock="raftkv-shots-$$"
data="$(mktemp -d)"
ctl="127.0.0.1:18079"
cleanup() { tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT

tmux -L "$sock" new-session -d -s lab -x 120 -y 40 \
  "$bin lab --fresh --data-dir $data --raft-port 16000 --http-port 18080 --control $ctl"
post() { curl -sf -X POST "http://$ctl$1" -H 'Content-Type: application/json' -d "${2:-null}" >/dev/null; }
state() { curl -sf "http://$ctl/lab/state"; }
leader() { state | python3 -c 'import json,sys; s=json.load(sys.stdin); l=[n["status"] for n in s["nodes"] if n["status"] and n["status"]["role"]=="leader" and n["status"]["has_quorum"]]; print(max(l,key=lambda x:x["term"])["id"] if l else "")'; }
wait_leader() { local l; for _ in $(seq 100); do l=$(leader 2>/dev/null || true); [ -n "$l" ] && [ "$l" != "${1:-}" ] && { echo "$l"; return; }; sleep 0.2; done; echo "no leader" >&2; exit 1; }
wait_all_applied() { for _ in $(seq 150); do state | python3 -c 'import json,sys; s=json.load(sys.stdin); a={n["status"]["last_applied"] for n in s["nodes"] if n["status"]}; l=[n["status"]["last_log_index"] for n in s["nodes"] if n["status"] and n["status"]["role"]=="leader"]; sys.exit(0 if len(a)==1 and l and a=={max(l)} else 1)' && return; sleep 0.2; done; echo "not settled" >&2; exit 1; }
term_of() { state | python3 -c "import json,sys; s=json.load(sys.stdin); print(s['nodes'][$1]['status']['term'])"; }
# Each screenshot's text is kept beside the evidence, so Report.md's quotes of it can be checked.
mkdir -p images/evidence/screens
shot() {
  sleep "${3:-1}"
  tmux -L "$sock" capture-pane -e -p -t lab > "$data/$1.ansi"
  python3 images/screenshot.py "$data/$1.ansi" "images/$1.png" "$2"
  sed -E 's/\x1b\[[0-9;:]*m//g; s/[[:space:]]+$//' "$data/$1.ansi" > "images/evidence/screens/$1.txt"
  echo "images/$1.png"
}

held_ids() { curl -sf "http://$ctl/lab/messages?held=true" | python3 -c 'import json,sys; print(" ".join(str(h["id"]) for h in json.load(sys.stdin)))'; }

l=$(wait_leader)
if [ "$only" = all ]; then
# ---- Report Task 1, question 1: the start-up election, as the timeline tells it.
shot task1-q1-start "Task 1 Q1: the first election after start-up"
for v in cat dog mouse; do post /lab/request "{\"via\":$(( (l + 1) % 5 )),\"key\":\"a\",\"value\":\"$v\"}"; done
shot lab-healthy "raftkv lab: five nodes, one leader, a replicated log"

post "/lab/nodes/$l/kill"
wait_leader "$l" >/dev/null
post /lab/request '{"key":"a","value":"after-kill"}' || true
shot lab-leader-killed "the leader was killed; a new leader in a higher term"

post "/lab/nodes/$l/restart"
wait_all_applied
post /lab/pause
tmux -L "$sock" send-keys -t lab '?'
shot lab-paused-help "paused, with the help overlay"

# ---- Report Task 1, question 2: an uncommitted entry on a leader that is then stopped.
post /lab/resume
tmux -L "$sock" send-keys -t lab '?'
l=$(wait_leader)
post /lab/request "{\"via\":$l,\"key\":\"q2\",\"value\":\"first\"}"
wait_all_applied
post /lab/pause
during="{\"via\":$l,\"key\":\"q2\",\"value\":\"during-pause\"}"
( curl -s -w '\n%{http_code}\n' -X POST "http://$ctl/lab/request" -H 'Content-Type: application/json' -d "$during" > "$data/during-pause.out" || true ) &
shot task1-q2-paused "Task 1 Q2: paused; the leader holds an entry not yet replicated" 1.5
post "/lab/nodes/$l/kill"
post /lab/resume
n=$(wait_leader "$l")
post /lab/request "{\"via\":$n,\"key\":\"q2\",\"value\":\"new-leader\"}"
post "/lab/nodes/$l/restart"
wait_all_applied
wait
# What a client saw, beside the screenshots (the key/value pane is hidden while paused).
{
  echo "# Evidence: images/regenerate.sh, Task 1 Q2 (the lab at the default timing)"
  echo
  echo "The request sent to the leader n$l while the cluster was paused, and its answer:"
  echo
  echo '```'
  echo "POST /lab/request $during"
  cat "$data/during-pause.out"
  echo '```'
  echo
  echo "Once the old leader n$l was back and every node had applied the new leader's entries, a linearizable read on it:"
  echo
  echo '```'
  echo "GET /keys/q2 → n$l"
  curl -s -w '\n%{http_code}\n' "http://127.0.0.1:$((18080 + l))/keys/q2"
  echo '```'
} > images/evidence/task1.md
post /lab/pause
shot task1-q2-after "Task 1 Q2: the old leader is back; its uncommitted entry was replaced"
post /lab/resume

# ---- Report Task 1, question 3: no majority. Pre-vote off, as in raft.github.io.
post /lab/pre-vote '{"enabled":false}'
l=$(wait_leader)
t0=$(term_of $(( (l + 1) % 5 )))
post "/lab/nodes/$l/kill"; post "/lab/nodes/$(( (l + 2) % 5 ))/kill"; post "/lab/nodes/$(( (l + 3) % 5 ))/kill"
for _ in $(seq 150); do [ "$(term_of $(( (l + 1) % 5 )))" -ge $(( t0 + 3 )) ] && break; sleep 0.2; done
post /lab/pause
shot task1-q3-no-majority "Task 1 Q3: three of five stopped; the two left keep raising the term"
post /lab/resume
for k in 0 2 3; do post "/lab/nodes/$(( (l + k) % 5 ))/restart"; done
wait_leader >/dev/null
wait_all_applied
post /lab/pause
shot task1-q3-elected "Task 1 Q3: all five back; one leader elected in a higher term"
post /lab/resume
post /lab/pre-vote '{"enabled":true}'
fi

uptime() { state | python3 -c 'import json,sys; print(json.load(sys.stdin)["uptime_ms"])'; }

# ---- Report: the start-up election and Figure 8 as the exercises run them, headless (their transcripts).
if [ "$only" = all ] || [ "$only" = exercises ]; then
for ex in startup-election figure-8; do
  { echo "# Evidence: \`raftkv lab --exercise $ex --headless\` (its transcript)"; echo
    "$bin" lab --exercise "$ex" --headless --data-dir "$data/ex-$ex" --raft-port 16500 --http-port 18500 --control 127.0.0.1:18599 2>/dev/null
  } > "images/evidence/exercise-$ex.md"
  echo "images/evidence/exercise-$ex.md"
done
fi

# ---- README: the partition screenshot at the top.
if [ "$only" = all ] || [ "$only" = partition ]; then
l=$(wait_leader)
for v in cat dog mouse; do post /lab/request "{\"via\":$(( (l + 1) % 5 )),\"key\":\"a\",\"value\":\"$v\"}"; done
post /lab/partition '{"groups":[[0,1,2],[3,4]]}'
for _ in $(seq 150); do l=$(leader 2>/dev/null || true); case "$l" in 0|1|2) break;; esac; sleep 0.2; done
post /lab/request '{"via":0,"key":"a","value":"majority"}' || true
( post /lab/request '{"via":3,"key":"a","value":"minority"}' || true ) &
shot lab-partition "partition {0,1,2} | {3,4}: the majority's leader commits, the minority cannot" 3
wait
post /lab/heal
fi

# ---- README: an election stepped one message at a time, the inspector open on a reply.
if [ "$only" = all ] || [ "$only" = stepped ]; then
l=$(wait_leader)
post /lab/pause
# Messages in flight when the pause began (heartbeats and their replies) go first.
for _ in $(seq 10); do ids=$(held_ids); [ -z "$ids" ] && break; for id in $ids; do post "/lab/messages/$id/deliver" || true; done; done
f=$(( (l + 1) % 5 ))
post "/lab/nodes/$f/timeout"
set -- $(held_ids)
post "/lab/messages/$1/deliver"
post "/lab/messages/$2/deliver"
# Choose the first reply in the held list (oldest first) so the inspector shows it.
n=$(curl -sf "http://$ctl/lab/messages?held=true" | python3 -c 'import json,sys; h=json.load(sys.stdin); print(1 + [x["leg"] for x in h].index("reply"))')
for _ in $(seq "$n"); do tmux -L "$sock" send-keys -t lab ']'; done
shot lab-stepped-election "paused: n$f's pre-vote requests delivered one at a time; the inspector shows a reply"
post /lab/resume
fi

# ---- README: the flight recorder. A run with a kill and a partition, the safety pane, a stepped
# election; then the lab quits and its trace is replayed and exported.
if [ "$only" = all ] || [ "$only" = record ]; then
l=$(wait_leader)
# The timeseries covers this part of the run only (in "all", the lab ran the Report's steps before).
begun=$(uptime)
for v in a b c; do post /lab/request "{\"key\":\"r\",\"value\":\"$v\"}"; done
post "/lab/nodes/$l/kill"
l2=$(wait_leader "$l")
post /lab/request '{"key":"r","value":"after-kill"}' || true
post "/lab/nodes/$l/restart"
post /lab/partition '{"groups":[[0,1,2],[3,4]]}'
sleep 1
for v in 1 2 3 4; do
  ( post /lab/request "{\"via\":3,\"key\":\"r\",\"value\":\"minority$v\"}" || true ) &
  post /lab/request "{\"via\":0,\"key\":\"r\",\"value\":\"majority$v\"}" || true
  sleep 0.5
done
wait
post /lab/heal
wait_leader >/dev/null
for v in x y z; do post /lab/request "{\"key\":\"r\",\"value\":\"$v\"}"; done
tmux -L "$sock" send-keys -t lab S
shot lab-safety "the safety pane: Raft's five properties checked live, and each client request as an interval"
tmux -L "$sock" send-keys -t lab S
l=$(wait_leader)
from=$(uptime)
post /lab/pause
for _ in $(seq 10); do ids=$(held_ids); [ -z "$ids" ] && break; for id in $ids; do post "/lab/messages/$id/deliver" || true; done; done
post "/lab/nodes/$(( (l + 2) % 5 ))/timeout"
for _ in $(seq 60); do [ -z "$(held_ids)" ] && break; post /lab/step || true; done
to=$(uptime)
post /lab/resume
tmux -L "$sock" send-keys -t lab q
for _ in $(seq 50); do tmux -L "$sock" has-session -t lab 2>/dev/null || break; sleep 0.2; done
"$bin" lab --replay "$data" --export "$data/stepped" --from "${from}ms" --to "${to}ms"
"$bin" lab --replay "$data" --export "$data/whole" --from "${begun}ms"
cp "$data/stepped/lamport.svg" images/lamport-stepped-election.svg
cp "$data/whole/timeseries.svg" images/timeseries-partition.svg
echo images/lamport-stepped-election.svg images/timeseries-partition.svg
tmux -L "$sock" new-session -d -s lab -x 120 -y 40 "$bin lab --replay $data"
sleep 1
# Replay: jump to the leader change after the kill, then open the messages pane.
for k in g g m; do tmux -L "$sock" send-keys -t lab "$k"; sleep 0.3; done
shot lab-replay "raftkv lab --replay: the recorded run at the leader change after the kill"
tmux -L "$sock" kill-session -t lab
# An exercise: Figure 8, answered at its step (c).
screen_has() { for _ in $(seq 300); do tmux -L "$sock" capture-pane -p -t lab | grep -q -- "$1" && return; sleep 0.2; done; echo "never saw: $1" >&2; exit 1; }
tmux -L "$sock" new-session -d -s lab -x 150 -y 45 \
  "$bin lab --exercise figure-8 --data-dir $data/exercise --raft-port 16000 --http-port 18080 --control $ctl"
for step in 1 2 3; do
  screen_has "step $step of 5 · Enter: next step"
  tmux -L "$sock" send-keys -t lab Enter
done
screen_has "press 1–3 to answer"
tmux -L "$sock" send-keys -t lab 2
screen_has "Why: Entry 3"
shot lab-exercise "raftkv lab --exercise figure-8: step (c), answered" 0.5
fi
