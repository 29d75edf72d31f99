#!/usr/bin/env bash
# Runs the raftkv binary from the repository's release build, building it first if it is missing.
# Used by create_server*.sh; any arguments are passed to raftkv. RAFTKV_BIN runs another build
# instead; the create_server scripts keep data under RAFTKV_DATA (default: data/ at the root).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${RAFTKV_BIN:-$root/target/release/raftkv}"
if [ ! -x "$bin" ]; then
  echo "building raftkv (first run only)..." >&2
  cargo build --release --manifest-path "$root/Cargo.toml" >&2
fi
exec "$bin" "$@"
