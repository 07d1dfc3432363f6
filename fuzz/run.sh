#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time: `fuzz/run.sh [seconds per target]`
# (default 60). New inputs go to fuzz/work/ (not committed); a crash is written to
# fuzz/artifacts/<target>/ and the script fails. To keep a crash as a regression test,
# copy the file into fuzz/regressions/<target>/: `cargo test` replays every file there
# and in fuzz/corpus/ (crates/sigil-verify/tests/fuzz_regressions.rs and
# crates/sigil-server/tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# cargo fuzz passes nightly-only flags (-Z sanitizer); this lets the stable toolchain
# accept them, as the machines here have no nightly.
export RUSTC_BOOTSTRAP=1

status=0
for target in verify_token jwks_document token_form; do
  mkdir -p "work/$target" "artifacts/$target"
  echo "==> $target for ${seconds}s"
  if ! cargo fuzz run -O "$target" "work/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="artifacts/$target/" 2> "work/$target.log"; then
    echo "$target: CRASH, see fuzz/artifacts/$target/ and fuzz/work/$target.log"
    status=1
  fi
  grep -E '^(#[0-9]+\s+DONE|Done)' "work/$target.log" | tail -n 1 || true
  echo "$target: $(ls "work/$target" | wc -l) inputs in the working corpus"
done
exit "$status"
