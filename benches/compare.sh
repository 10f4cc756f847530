#!/usr/bin/env bash
# Side-by-side benchmark of vouch, CNCF distribution (Debian's
# docker-registry) and nginx serving the same bytes as static files (the
# practical limit for a read), same machine, same run, all on loopback with
# their data on the same disk. Prints markdown tables (figures, and ratios
# to distribution and to nginx). BENCH_SECS sets the wrk duration (default
# 10) and BENCH_ROUNDS the rounds of the vouch/nginx reads, alternating
# which goes first (default 3); VOUCH_SERVE_FLAGS adds flags to `vouch serve` (e.g. --no-countersign).
#
#   benches/compare.sh
#   VOUCH_SERVE_FLAGS=--no-countersign benches/compare.sh
#
# vouch fsyncs every blob, chunk and manifest before acknowledging it;
# distribution's filesystem driver does not fsync. Both run in open mode
# (no auth), vouch with its ledger key and policy-free registry.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in docker-registry wrk curl python3 nginx; do
  command -v "$tool" >/dev/null || { echo "installing docker-registry, wrk and nginx"; apt-get install -y -qq docker-registry wrk curl nginx-light >/dev/null; break; }
done
cargo build --release -q --bin vouch
work=$(mktemp -d "${PWD}/target/compare.XXXXXX")
cleanup() { kill "${vpid:-}" "${dpid:-}" "${npid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# vouch, on a free port chosen by the OS.
# The open policy admits the unsigned benchmark images; every decision is
# still appended (fsync'd) to the ledger and, unless --no-countersign,
# countersigned: work distribution does not do.
# shellcheck disable=SC2086
"${CARGO_TARGET_DIR:-target}"/release/vouch serve --listen 127.0.0.1:0 --data "$work/vouch" --policy spec/examples/policy-open.toml \
  ${VOUCH_SERVE_FLAGS:-} >"$work/vouch.out" 2>"$work/vouch.err" &
vpid=$!
for _ in $(seq 50); do grep -q '^listening on' "$work/vouch.out" 2>/dev/null && break; sleep 0.1; done
vaddr=$(sed -n 's/^listening on //p' "$work/vouch.out")

# distribution, on a port picked the same way.
dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/dist.yml" <<YML
version: 0.1
log: { level: error }
storage:
  filesystem: { rootdirectory: $work/dist }
  delete: { enabled: true }
http: { addr: 127.0.0.1:$dport }
YML
docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1 &
dpid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$dport/v2/" >/dev/null && break; sleep 0.1; done

# nginx: two worker processes (one per core, as vouch's runtime has), the
# same bytes as files under $work/nginx/root (compare.py copies them there
# from vouch), keep-alive, no access log.
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/nginx/root" "$work/nginx/logs"
chmod 755 "$work" "$work/nginx"  # nginx's workers run as nobody
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 2;
error_log $work/nginx/logs/error.log error;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  types { }
  default_type application/octet-stream;
  client_body_temp_path $work/nginx/tmp;
  proxy_temp_path $work/nginx/tmp; fastcgi_temp_path $work/nginx/tmp;
  uwsgi_temp_path $work/nginx/tmp; scgi_temp_path $work/nginx/tmp;
  server {
    listen 127.0.0.1:$nport;
    root $work/nginx/root;
    location /v2/bench/get/manifests/ { default_type application/vnd.oci.image.manifest.v1+json; }
    # An inclusion proof is a file per index, written by compare.py with
    # the bytes vouch served for it.
    location = /ledger/proof/inclusion { default_type application/json; try_files /proofs/\$arg_index =404; }
  }
}
CONF
mkdir -p "$work/nginx/tmp"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
npid=$!

echo "vouch at $vaddr (pid $vpid), distribution at 127.0.0.1:$dport (pid $dpid), nginx at 127.0.0.1:$nport (pid $npid)" >&2
python3 benches/compare.py "$vaddr" "$vpid" "127.0.0.1:$dport" "$dpid" "127.0.0.1:$nport" "$work/nginx/root"
