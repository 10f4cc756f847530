#!/usr/bin/env bash
# The whole test suite, as CI runs it (after .ci/run's installs):
# formatting, lints, test vectors in sync with their generator, every test of
# every crate (unit, property, store, crash, CLI), the black-box client
# suites again on an object store, the verification half building without
# RocksDB, and a short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the verification half builds without the store"
cargo build -p vouch-ledger --no-default-features --locked

step "test vectors match their generator"
cargo run -q -p vouch-tools --bin vectorgen --locked -- --check

step "tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"

# The black-box suites of real clients and admission once more, every
# server keeping its blobs in a real SeaweedFS (tests/common/mod.rs,
# test_storage): one behaviour over both blob stores.
step "black-box suites with blobs on SeaweedFS (VOUCH_TEST_STORAGE=s3)"
# (Suites that inspect blob or session files on disk, and the upgrade from
# a local data directory, run on local files only.)
VOUCH_TEST_STORAGE=s3 cargo test --locked --test clients --test admission --test audit \
  --test digests --test signing --test image_policy --test attestation_policy --test notation \
  --test rekor_entries --test keyless_ct --test monitor --test witness --test policy_cli 2>&1 | tee -a "$log"

step "fuzz (${FUZZ_SECS:-20} s per target)"
tools/fuzz.sh "${FUZZ_SECS:-20}"

# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
