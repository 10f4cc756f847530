#!/usr/bin/env bash
# Runs every fuzz target for a while (default 20 s each), starting from the
# committed seeds in fuzz/seeds/. New corpus entries go to fuzz/corpus/
# (ignored by git); a crash leaves its input in fuzz/artifacts/ and fails.
#
#   tools/fuzz.sh            # 20 s per target
#   tools/fuzz.sh 600        # 10 min per target
#
# cargo-fuzz needs nightly-only flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them (this machine has only stable).
set -euo pipefail
secs=${1:-20}
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  echo "fuzz: $target for ${secs}s"
  log="corpus/$target.log"
  if ! cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- -max_total_time="$secs" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $target FAILED (input saved under fuzz/artifacts/$target/)"
    exit 1
  fi
  grep -E '^Done' "$log"
done
echo "fuzz: all targets ran ${secs}s without a failure"
