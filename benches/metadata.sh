#!/usr/bin/env bash
# vouch with its registry metadata in RocksDB (the default) and in
# PostgreSQL (--database), each run beside CNCF distribution and nginx by
# benches/compare.sh: manifest GETs, blob GETs, pushes of 200 x 1 MiB blobs
# with a manifest each. Starts its own PostgreSQL 15 cluster (Debian's
# postgresql; initdb in a temporary directory, fsync on, as user postgres
# when run as root) on loopback, on the same disk and cores.
#
#   CARGO_TARGET_DIR=/root/.cache/vouch-target benches/metadata.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/postgres" ] || { echo "installing postgresql"; apt-get install -y -qq postgresql >/dev/null; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); }
pg=$(mktemp -d)
run=()
if [ "$(id -u)" = 0 ]; then chown postgres: "$pg"; run=(setpriv --reuid=postgres --regid=postgres --clear-groups --); fi
cleanup() { kill -INT "${ppid_:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$pg"; }
trap cleanup EXIT
"${run[@]}" "$bin/initdb" -D "$pg/data" -U vouch -A trust -E UTF8 --locale=C >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${run[@]}" "$bin/postgres" -D "$pg/data" -p "$port" -k "$pg" -c listen_addresses=127.0.0.1 >"$pg/log" 2>&1 &
ppid_=$!
for _ in $(seq 100); do "$bin/psql" -h 127.0.0.1 -p "$port" -U vouch -d postgres -Atc 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/psql" -h 127.0.0.1 -p "$port" -U vouch -d postgres -qc 'CREATE DATABASE registry'
echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at 127.0.0.1:$port" >&2

echo "## metadata in RocksDB"
benches/compare.sh
echo
echo "## metadata in PostgreSQL"
VOUCH_SERVE_FLAGS="${VOUCH_SERVE_FLAGS:-} --database postgres://vouch@127.0.0.1:$port/registry" benches/compare.sh
