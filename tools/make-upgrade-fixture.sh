#!/usr/bin/env bash
# Writes tests/fixtures/datadir-<name>.tar.gz: a data directory made by the
# vouch binary given (built from an earlier commit), for tests/upgrade.rs,
# which opens it with the current code and checks that everything carries
# over and the ledger grows on.
#
#   tools/make-upgrade-fixture.sh <path to an old vouch binary> <name>
#
# What it holds (the test reads fixture.json for the digests):
# - team/app:v1, signed by team.key and admitted (countersigned by vouch);
# - team/app:v2, unsigned and denied;
# - v2's own manifest pushed again under v2's .sig tag (which the old
#   version wrongly stored as evidence and served);
# - an upload session with 5 bytes written, left open;
# - the checkpoint at the end, for `vouch audit --state`.
set -euo pipefail
old=${1:?old vouch binary}; name=${2:?fixture name}
out="$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/datadir-$name.tar.gz"
work=$(mktemp -d); trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
"$old" keygen --out team >/dev/null
"$old" serve --listen 127.0.0.1:0 --data data --trust-key team.pub >serve.out 2>serve.err &
pid=$!
for _ in $(seq 100); do grep -q '^listening on' serve.out && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' serve.out)
sha() { printf 'sha256:%s' "$(sha256sum "$1" | cut -d' ' -f1)"; }
push_blob() { # repo file
  curl -sf -X POST --data-binary @"$2" -H 'Content-Type: application/octet-stream' \
    "http://$addr/v2/$1/blobs/uploads/?digest=$(sha "$2")" >/dev/null
}
put_manifest() { # repo ref file
  curl -sf -X PUT --data-binary @"$3" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    "http://$addr/v2/$1/manifests/$2" >/dev/null
}
image() { # name content -> writes <name>.json, prints its digest
  printf '%s' "$2" >"$1.layer"
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' "$(sha "$1.layer")" >"$1.config"
  push_blob team/app "$1.layer"; push_blob team/app "$1.config"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
    "$(sha "$1.config")" "$(stat -c%s "$1.config")" "$(sha "$1.layer")" "$(stat -c%s "$1.layer")" >"$1.json"
  sha "$1.json"
}
v1=$(image v1 'layer of the signed image')
put_manifest team/app v1 v1.json
"$old" sign "$addr/team/app:v1" --key team.key >/dev/null
v2=$(image v2 'layer of the unsigned image')
put_manifest team/app v2 v2.json
put_manifest team/app "sha256-${v2#sha256:}.sig" v2.json
session=$(curl -sf -D - -o /dev/null -X POST "http://$addr/v2/team/app/blobs/uploads/" | sed -n 's/^[Ll]ocation: *//p' | tr -d '\r')
printf 'hello' | curl -sf -X PATCH --data-binary @- -H 'Content-Range: 0-4' "http://$addr$session" >/dev/null
curl -sf "http://$addr/ledger/checkpoint" >checkpoint
kill -TERM $pid; wait $pid || true
jq -n --arg v1 "$v1" --arg v2 "$v2" --arg session "$session" \
  --arg v1_layer "$(sha v1.layer)" --arg v2_layer "$(sha v2.layer)" --arg v2_config "$(sha v2.config)" \
  --arg made_by "$("$old" --version)" \
  '{made_by: $made_by, v1: $v1, v2: $v2, session: $session, v1_layer: $v1_layer, v2_layer: $v2_layer, v2_config: $v2_config}' >fixture.json
mkdir -p "$(dirname "$out")"
tar -czf "$out" data team.key team.pub checkpoint fixture.json
echo "wrote $out"
