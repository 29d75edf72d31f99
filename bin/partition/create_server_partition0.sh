#!/usr/bin/env bash
# Server 0 for the two-computer partition: servers 0-2 run on the computer with IP1, 3-4 on IP2.
# Usage: ./create_server_partition0.sh IP1 IP2   (HTTP port 8080 on IP1, Raft port 6000)
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 IP1 IP2 [raftkv node options]" >&2; exit 2; fi
IP1="$1"; IP2="$2"; shift 2
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/../raftkv.sh" node 8080 $IP1:6000 $IP1:6001 $IP1:6002 $IP2:6003 $IP2:6004 --data-dir "${RAFTKV_DATA:-$here/../../data}/partition-server0" "$@"
