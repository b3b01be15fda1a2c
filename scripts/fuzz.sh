#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30); fails on any crash.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-30}"
cd "$ROOT/fuzz"
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz
export RUSTC_BOOTSTRAP=1 # cargo-fuzz passes -Z flags; these machines have stable Rust only
cargo fuzz build -O
for target in $(cargo fuzz list); do
	work="$ROOT/.cache/fuzz-corpus/$target"
	mkdir -p "$work"
	echo "fuzz: $target for ${secs}s" >&2
	cargo fuzz run -O "$target" "$work" "corpus/$target" -- -max_total_time="$secs" -print_final_stats=1 2>&1 |
		grep -E 'Done [0-9]+ runs|stat::number_of_executed_units|ERROR|panicked' || true
	# cargo fuzz exits non-zero on a crash; with the pipe, look for its artifact instead.
	if compgen -G "artifacts/$target/*" >/dev/null; then
		echo "fuzz: $target found a crash: $(ls artifacts/"$target")" >&2
		exit 1
	fi
done
