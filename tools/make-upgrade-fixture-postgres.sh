#!/usr/bin/env bash
# Writes tests/fixtures/datadir-<name>.tar.gz: a registry served with
# `--database` by the vouch binary given (built from an earlier commit,
# whose ledger stayed in the data directory while the metadata went to
# PostgreSQL), for tests/upgrade_postgres.rs: the data directory, and the
# database as `pg_dump --inserts` wrote it (registry.sql).
#
#   tools/make-upgrade-fixture-postgres.sh <path to an old vouch binary> <name>
#
# What it holds (the test reads fixture.json):
# - team/app:v1, admitted under the open policy (and countersigned);
# - the checkpoint at the end, for `vouch audit --state`.
set -euo pipefail
old=${1:?old vouch binary}; name=${2:?fixture name}
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/tests/fixtures/datadir-$name.tar.gz"
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d); chmod 755 "$work"
trap 'kill $pid 2>/dev/null || true; kill $pgpid 2>/dev/null || true; rm -rf "$work"' EXIT
pid=; pgpid=
run=(); if [ "$(id -u)" = 0 ]; then mkdir "$work/pg"; chown postgres: "$work/pg"; run=(setpriv --reuid=postgres --regid=postgres --clear-groups --); else mkdir "$work/pg"; fi
"${run[@]}" "$bin/initdb" -D "$work/pg/data" -U vouch -A trust -E UTF8 --locale=C >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${run[@]}" "$bin/postgres" -D "$work/pg/data" -p "$port" -k "$work/pg" -c listen_addresses=127.0.0.1 >"$work/pg/log" 2>&1 &
pgpid=$!
for _ in $(seq 100); do "$bin/psql" -h 127.0.0.1 -p "$port" -U vouch -d postgres -Atc 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/psql" -h 127.0.0.1 -p "$port" -U vouch -d postgres -qc 'CREATE DATABASE registry'
cd "$work"
"$old" serve --listen 127.0.0.1:0 --data data --policy "$root/spec/examples/policy-open.toml" \
  --database "postgres://vouch@127.0.0.1:$port/registry" >serve.out 2>serve.err &
pid=$!
for _ in $(seq 100); do grep -q '^listening on' serve.out && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' serve.out)
sha() { printf 'sha256:%s' "$(sha256sum "$1" | cut -d' ' -f1)"; }
push_blob() { # repo file
  curl -sf -X POST --data-binary @"$2" -H 'Content-Type: application/octet-stream' \
    "http://$addr/v2/$1/blobs/uploads/?digest=$(sha "$2")" >/dev/null
}
printf 'layer of the image served from PostgreSQL' >v1.layer
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' "$(sha v1.layer)" >v1.config
push_blob team/app v1.layer; push_blob team/app v1.config
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
  "$(sha v1.config)" "$(stat -c%s v1.config)" "$(sha v1.layer)" "$(stat -c%s v1.layer)" >v1.json
curl -sf -X PUT --data-binary @v1.json -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  "http://$addr/v2/team/app/manifests/v1" >/dev/null
curl -sf "http://$addr/ledger/checkpoint" >checkpoint
kill -TERM $pid; wait $pid || true
"$bin/pg_dump" -h 127.0.0.1 -p "$port" -U vouch --inserts --no-owner --no-privileges registry >registry.sql
jq -n --arg v1 "$(sha v1.json)" --arg v1_layer "$(sha v1.layer)" --arg made_by "$("$old" --version)" \
  '{made_by: $made_by, v1: $v1, v1_layer: $v1_layer}' >fixture.json
mkdir -p "$(dirname "$out")"
tar -czf "$out" data registry.sql checkpoint fixture.json
echo "wrote $out"
