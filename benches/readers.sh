#!/usr/bin/env bash
# Same-run A/B of how `vouch serve` serves connections: on the main
# multi-threaded runtime (--reader-threads 0) against one single-threaded
# reader runtime per core (the default on local storage; spec/design.md,
# "Connections served by one single-threaded runtime per core"). Two
# servers, each with its own data directory, answer wrk (2 threads, 64
# keep-alive connections) for the ledger's checkpoint and its first
# (partial) tile, in rounds that alternate which goes first. BENCH_SECS
# (default 8) and BENCH_ROUNDS (default 3) set the length.
#
#   CARGO_TARGET_DIR=/root/.cache/vouch-target benches/readers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
cargo build --release -q --bin vouch
secs=${BENCH_SECS:-8}
rounds=${BENCH_ROUNDS:-3}
work=$(mktemp -d "${PWD}/target/readers.XXXXXX")
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
start() { # name, extra flags...
  local name=$1; shift
  "${CARGO_TARGET_DIR:-target}"/release/vouch serve --listen 127.0.0.1:0 --data "$work/$name" \
    --policy spec/examples/policy-open.toml "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 50); do grep -q '^listening on' "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/^listening on //p' "$work/$name.out"
}
main=$(start main --reader-threads 0)
readers=$(start readers)
rate() { wrk -t2 -c64 -d"${secs}s" "http://$1$2" | sed -n 's/^Requests\/sec: *//p'; }
for path in /ledger/checkpoint /ledger/tile/0/000.p/1; do
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) = 1 ]; then a=$(rate "$main" "$path"); b=$(rate "$readers" "$path")
    else b=$(rate "$readers" "$path"); a=$(rate "$main" "$path"); fi
    python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{sys.argv[3]} round {sys.argv[4]}: main runtime {a:,.0f}/s, reader threads {b:,.0f}/s, {b/a:.2f}x')" "$a" "$b" "$path" "$r"
  done
done
