#!/usr/bin/env bash
# The layering of the design (README "Design"). The one rule, that a module uses only modules
# listed before it in src/lib.rs, is .ci/layers.py's. The checks below say what an order cannot:
# which layers stay pure, and where HTTP status codes and Raft instances may appear.
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0
python3 .ci/layers.py || fail=1
rule() { # rule "description" <grep args...>
  local what="$1"; shift
  if out=$(grep -rnE "$@"); then
    echo "layering violation: $what"; echo "$out"; fail=1
  fi
}
rule "metrics uses nothing of ours (every layer may count into it)" 'crate::' service/src/metrics.rs
rule "kv is pure: no tokio, no openraft" '^use (tokio|openraft)|tokio::|openraft::' service/src/kv
rule "store knows neither kv nor raft (it is generic over the type config)" 'crate::(kv|raft)' service/src/store
rule "net does not know HTTP" 'axum' service/src/net
# The lab's control API is HTTP too, but for the lab, not the key/value service.
rule "only api (and the lab's control API) name HTTP status codes" 'StatusCode' src service/src --include=*.rs --exclude-dir=api --exclude=control.rs
rule "the lab never touches openraft, the transport's internals or storage" 'openraft::|crate::(net|store)::' src/lab
rule "only node creates a Raft" 'Raft::new|Raft::build' src service/src --exclude-dir=node
# The service crate is what a node runs: none of the lab's or the tooling's crates may enter it.
rule "the service depends on no lab or tooling crate" '^(ratatui|crossterm|clap|anyhow|rand|hdrhistogram|base64|stateright|hyper|hyper-util|http-body-util|tracing-subscriber) *=' service/Cargo.toml
exit $fail
