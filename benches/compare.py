#!/usr/bin/env python3
"""Side-by-side registry benchmark: vouch against CNCF distribution, and
vouch's reads against nginx serving the same bytes as static files.

Run by benches/compare.sh, which starts the three servers on loopback (same
machine, same run) and passes their addresses. Measures, for each registry:

  manifest GET requests/s at 64 concurrent connections (wrk, keep-alive)
  blob GET throughput of one 256 MiB blob (curl, best of 3)
  push of 200 x 1 MiB blobs plus a manifest each (POST + PUT per blob,
    one keep-alive connection, as a client pushing layers would)
  server peak RSS (VmHWM from /proc)

and prints each figure with the ratio vouch / distribution; then the
reads (the manifest, a full ledger hash tile, inclusion proofs at random
indexes of the whole log, and the blob, the bytes copied from vouch into
nginx's root under the same paths, the proofs one file per index) for vouch
and nginx, with the ratio vouch / nginx.
"""
import hashlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

SECS = int(os.environ.get("BENCH_SECS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
OCI = "application/vnd.oci.image.manifest.v1+json"


def push_blob(conn, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    conn.request("POST", f"/v2/{repo}/blobs/uploads/", body=b"", headers={"Content-Length": "0"})
    r = conn.getresponse()
    r.read()
    assert r.status == 202, (r.status, r.reason)
    loc = r.getheader("Location")
    if loc.startswith("http"):
        loc = "/" + loc.split("/", 3)[3]
    sep = "&" if "?" in loc else "?"
    conn.request("PUT", f"{loc}{sep}digest={digest}", body=data, headers={"Content-Type": "application/octet-stream"})
    r = conn.getresponse()
    r.read()
    assert r.status == 201, (r.status, r.reason)
    return digest


def push_manifest(conn, repo, tag, config, layer, layer_size):
    m = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config[0], "size": config[1]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}],
    }).encode()
    conn.request("PUT", f"/v2/{repo}/manifests/{tag}", body=m, headers={"Content-Type": OCI})
    r = conn.getresponse()
    r.read()
    assert r.status == 201, (r.status, r.reason, tag)


def setup(addr):
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    cd = push_blob(conn, "bench/get", cfg)
    small = os.urandom(1024)
    ld = push_blob(conn, "bench/get", small)
    push_manifest(conn, "bench/get", "v1", (cd, len(cfg)), ld, len(small))
    big = os.urandom(256 << 20)
    bd = push_blob(conn, "bench/get", big)
    return bd


def fetch(addr, path):
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    conn.request("GET", path, headers={"Accept": OCI})
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, (r.status, path)
    return body


TILE = "/ledger/tile/0/000"


def mirror_to_nginx(vouch_addr, root, blob):
    """Copies the manifest, the blob and the first full hash tile vouch
    serves into nginx's root, under the same paths."""
    for path in ["/v2/bench/get/manifests/v1", f"/v2/bench/get/blobs/{blob}", TILE]:
        target = root + path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(fetch(vouch_addr, path))


def checkpoint_size(addr):
    return int(fetch(addr, "/ledger/checkpoint").split(b"\n")[1])


def mirror_proofs(vouch_addr, root, size):
    """Writes vouch's inclusion proof of every entry (at most the first
    PROOFS) in a tree of `size` as `root/proofs/<index>`, which nginx serves
    for `/ledger/proof/inclusion?index=<index>&size=<size>`. Returns the
    wrk script that asks for them at random."""
    count = min(size, PROOFS)
    os.makedirs(f"{root}/proofs", exist_ok=True)
    for i in range(count):
        with open(f"{root}/proofs/{i}", "wb") as f:
            f.write(fetch(vouch_addr, f"/ledger/proof/inclusion?index={i}&size={size}"))
    script = f"{root}/../proofs.lua"
    with open(script, "w") as f:
        f.write(
            "math.randomseed(os.time())\n"
            "request = function()\n"
            f"  return wrk.format(\"GET\", \"/ledger/proof/inclusion?index=\" .. math.random(0, {count - 1}) .. \"&size={size}\")\n"
            "end\n")
    return script


PROOFS = 1000


def manifest_rps(addr, path="/v2/bench/get/manifests/v1", script=None):
    args = ["-s", script] if script else []
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{SECS}s", "-H", f"Accept: {OCI}", *args, f"http://{addr}{path}"],
        capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if "Non-2xx" in line:
            raise SystemExit(f"{addr}: wrk saw errors: {line}")
    return rps


def blob_throughput(addr, digest):
    best = 0.0
    for _ in range(3):
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{speed_download}", f"http://{addr}/v2/bench/get/blobs/{digest}"],
            capture_output=True, text=True, check=True).stdout.split()
        assert out[0] == "200", out
        best = max(best, float(out[1]))
    return best / (1 << 20)


def push_200(addr):
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    blobs = [os.urandom(1 << 20) for _ in range(200)]
    start = time.monotonic()
    cd = push_blob(conn, "bench/push", cfg)
    for i, b in enumerate(blobs):
        d = push_blob(conn, "bench/push", b)
        push_manifest(conn, "bench/push", f"t{i}", (cd, len(cfg)), d, len(b))
    return time.monotonic() - start


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    vouch_addr, vouch_pid, dist_addr, dist_pid, nginx_addr, nginx_root = sys.argv[1:7]
    results = {}
    blobs = {}
    for name, addr, pid in [("vouch", vouch_addr, vouch_pid), ("distribution", dist_addr, dist_pid)]:
        digest = setup(addr)
        blobs[name] = digest
        results[name] = {
            "manifest GET req/s (64 conns)": manifest_rps(addr),
            "blob GET MiB/s (256 MiB)": blob_throughput(addr, digest),
            "push 200 x 1 MiB + manifests (MiB/s)": 200 / push_200(addr),
            "peak RSS MiB": rss_mib(pid),
        }
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    print(f"| measure | vouch | distribution 2.8.2 | vouch / distribution |")
    print(f"|---|---|---|---|")
    for k in results["vouch"]:
        v, d = results["vouch"][k], results["distribution"][k]
        print(f"| {k} | {v:,.1f} | {d:,.1f} | {v / d:.2f}x |")

    # The same reads from nginx, and from vouch again, in turn.
    mirror_to_nginx(vouch_addr, nginx_root, blobs["vouch"])
    size = checkpoint_size(vouch_addr)
    proofs = mirror_proofs(vouch_addr, nginx_root, size)
    print(f"inclusion proofs: {min(size, PROOFS)} indexes of a {size}-entry log", file=sys.stderr)
    # Rounds alternate which server goes first; each figure is the median
    # of its rounds (this VM's rates drift by tens of percent within a run).
    reads = {"vouch": {}, "nginx": {}}
    order = [("nginx", nginx_addr), ("vouch", vouch_addr)]
    for r in range(ROUNDS):
        for name, addr in (order if r % 2 == 0 else order[::-1]):
            got = {
                "manifest GET req/s (64 conns)": manifest_rps(addr),
                "ledger tile GET req/s (64 conns)": manifest_rps(addr, TILE),
                "inclusion proof GET req/s (64 conns)": manifest_rps(addr, "/", proofs),
                "blob GET MiB/s (256 MiB)": blob_throughput(addr, blobs["vouch"]),
            }
            for k, v in got.items():
                reads[name].setdefault(k, []).append(v)
            print(f"round {r + 1}, {name} reads: {json.dumps(got)}", file=sys.stderr)
    print()
    print(f"| read (median of {ROUNDS} rounds) | vouch | nginx (static files) | vouch / nginx | rounds, vouch / nginx |")
    print(f"|---|---|---|---|---|")
    for k in reads["vouch"]:
        v, n = reads["vouch"][k], reads["nginx"][k]
        each = ", ".join(f"{a / b:.2f}" for a, b in zip(v, n))
        print(f"| {k} | {statistics.median(v):,.1f} | {statistics.median(n):,.1f} "
              f"| {statistics.median(v) / statistics.median(n):.2f}x | {each} |")

if __name__ == "__main__":
    main()
