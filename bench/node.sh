#!/usr/bin/env bash
# The Node binding's per-run cost against the Rust loop, in one run (bench/node.js).
#   bench/node.sh         (as root)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib.sh"
run_as_root "$ROOT/bench/node.sh" "$@"
scripts/build-test-images.sh >/dev/null
(cd bindings-node && npm install --no-audit --no-fund --loglevel=error && node build.js --force)
cargo build --release --example run_loop >&2
node bench/node.js "$ROOT/.cache/images/busybox" "$ROOT/target/release/examples/run_loop" | tee bench/results/node.txt
