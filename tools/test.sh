#!/usr/bin/env bash
# The whole test suite, as CI runs it (after .ci/run's installs):
# formatting, lints, test vectors in sync with their generator, every test of
# every crate (unit, property, store, crash, CLI), the black-box client
# suites again on an object store and PostgreSQL, the in-process API suites
# again on PostgreSQL, the verification half building without
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
# server keeping its blobs in a real SeaweedFS (tests/common/seaweedfs.rs)
# and its registry metadata in a real PostgreSQL (tests/common/postgres.rs):
# one behaviour over both blob stores and both metadata stores.
step "black-box suites on SeaweedFS and PostgreSQL (VOUCH_TEST_STORAGE=s3 VOUCH_TEST_DATABASE=postgres)"
# (Suites that inspect blob or session files on disk, and the upgrade from
# a local data directory, run on local files and RocksDB only.)
VOUCH_TEST_STORAGE=s3 VOUCH_TEST_DATABASE=postgres cargo test --locked --test clients --test admission \
  --test audit --test digests --test signing --test image_policy --test attestation_policy --test notation \
  --test rekor_entries --test keyless_ct --test monitor --test witness --test policy_cli 2>&1 | tee -a "$log"

# The in-process API suites (the real router, in the test process), the
# registry crash test, the bounds under attack and the web pages once more
# with their metadata in PostgreSQL (blobs on local disk: the crash test
# checks every blob file).
step "in-process, crash, bounds and web suites on PostgreSQL (VOUCH_TEST_DATABASE=postgres)"
VOUCH_TEST_DATABASE=postgres cargo test --locked --test access --test admission_api --test admission_attacks \
  --test admission_image --test conformance_blobs --test conformance_manifests --test integrity \
  --test quarantine --test quarantine_model --test races --test registry_api --test registry_listing \
  --test registry_ops --test crash_registry --test bounds --test ui 2>&1 | tee -a "$log"

step "fuzz (${FUZZ_SECS:-20} s per target)"
tools/fuzz.sh "${FUZZ_SECS:-20}"

# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
