#!/usr/bin/env bash
# Server 2 of the 5-node cluster on this machine: HTTP port 8082, Raft 127.0.0.1:6002.
# Data (Raft log, vote, snapshot) in data/server2 at the repository root; it survives restarts.
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/raftkv.sh" node 8082 127.0.0.1:6002 127.0.0.1:6000 127.0.0.1:6001 127.0.0.1:6003 127.0.0.1:6004 --data-dir "${RAFTKV_DATA:-$here/../data}/server2" "$@"
