#!/usr/bin/env bash
# Server 0 of the 5-node cluster on this machine: HTTP port 8080, Raft 127.0.0.1:6000.
# Data (Raft log, vote, snapshot) in data/server0 at the repository root; it survives restarts.
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/raftkv.sh" node 8080 127.0.0.1:6000 127.0.0.1:6001 127.0.0.1:6002 127.0.0.1:6003 127.0.0.1:6004 --data-dir "${RAFTKV_DATA:-$here/../data}/server0" "$@"
