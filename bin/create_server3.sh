#!/usr/bin/env bash
# Server 3 of the 5-node cluster on this machine: HTTP port 8083, Raft 127.0.0.1:6003.
# Data (Raft log, vote, snapshot) in data/server3 at the repository root; it survives restarts.
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/raftkv.sh" node 8083 127.0.0.1:6003 127.0.0.1:6000 127.0.0.1:6001 127.0.0.1:6002 127.0.0.1:6004 --data-dir "${RAFTKV_DATA:-$here/../data}/server3" "$@"
