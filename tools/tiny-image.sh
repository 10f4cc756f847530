#!/usr/bin/env bash
# Writes a tiny one-layer OCI image layout, offline, for trying vouch:
#
#   tools/tiny-image.sh my-layout v1 ["hello from vouch"]
#   skopeo copy --dest-tls-verify=false oci:my-layout:v1 docker://127.0.0.1:5000/team/app:v1
#
# The layer is a real gzip'd tar of one file (podman can run nothing with it,
# but pulls it); the config names the layer's diff_id. With internet access,
# `skopeo copy docker://docker.io/library/alpine:3 oci:my-layout:v1` gives a
# real image instead.
set -euo pipefail
dir=${1:?usage: tools/tiny-image.sh <layout dir> <tag> [file content]}
tag=${2:?usage: tools/tiny-image.sh <layout dir> <tag> [file content]}
content=${3:-hello from vouch}
mkdir -p "$dir/blobs/sha256"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
printf '%s\n' "$content" >"$work/hello.txt"
tar -C "$work" -cf "$work/layer.tar" hello.txt
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n "$work/layer.tar"
put() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$dir/blobs/sha256/$d"; echo "$d"; }
layer=$(put "$work/layer.tar.gz")
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/true"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$diff_id" >"$work/config.json"
config=$(put "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
  "$config" "$(stat -c%s "$work/config.json")" "$layer" "$(stat -c%s "$work/layer.tar.gz")" >"$work/manifest.json"
manifest=$(put "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest" "$(stat -c%s "$work/manifest.json")" "$tag" >"$dir/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
echo "wrote $dir ($tag): sha256:$manifest"
