#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30). Fails when a target
# crashes, does not start, has no seed corpus, or executes fewer inputs than a floor: a
# target that silently did not run must not pass.
#   scripts/fuzz.sh [SECONDS]
# Knob: ISOLETTE_FUZZ_MIN_EXECS, the floor (default 1000 per 30 s, scaled to SECONDS).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# fuzz_enough_runs comes from lib.sh (scripts/selftest.sh tests it).
source "$ROOT/scripts/lib.sh"
log() { echo "fuzz: $*" >&2; }

secs="${1:-30}"
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || { log "usage: scripts/fuzz.sh [SECONDS]"; exit 2; }
# Every target runs thousands of inputs a second here, the slow ones (layer_tar,
# image_layout) included, so the floor only catches a target that did not really run.
min_execs="${ISOLETTE_FUZZ_MIN_EXECS:-$(((1000 * secs + 29) / 30))}"

# The targets that touch files make a scratch directory per process under temp_dir() and
# never remove it: give the run its own TMPDIR and remove it on exit, whatever happens
# (the INT/TERM traps turn a signal into an exit, which runs the EXIT trap).
run_tmp="$(mktemp -d "${TMPDIR:-/tmp}/isolette-fuzz.XXXXXX")"
trap 'rm -rf --one-file-system "$run_tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
export TMPDIR="$run_tmp"

cd "$ROOT/fuzz"
if ! command -v cargo-fuzz >/dev/null; then
	log "installing cargo-fuzz (about a minute)"
	cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1 # cargo-fuzz passes -Z flags; these machines have stable Rust only
log "building every target (optimised, with ASan: 3-5 minutes the first time)"
cargo fuzz build -O
list="$(cargo fuzz list)"
mapfile -t targets <<<"$list"
[[ -n "${targets[0]}" ]] || { log "cargo fuzz list found no targets"; exit 1; }

failed=()
for target in "${targets[@]}"; do
	work="$ROOT/.cache/fuzz-corpus/$target"
	out="$run_tmp/$target.log"
	mkdir -p "$work"
	# libFuzzer stops at once on a missing corpus directory; an empty one gives it nothing
	# shaped like real input. Either is a repository mistake, not a reason to skip.
	if ! compgen -G "corpus/$target/*" >/dev/null; then
		log "$target: FAILED: no seed inputs in fuzz/corpus/$target (add a few small ones)"
		failed+=("$target")
		continue
	fi
	log "$target for ${secs}s"
	rc=0
	cargo fuzz run -O "$target" "$work" "corpus/$target" -- -max_total_time="$secs" -print_final_stats=1 \
		>"$out" 2>&1 || rc=$?
	grep -E '^(INFO: seed corpus|Done [0-9]+ runs)|ERROR|panicked' "$out" >&2 || true
	if ((rc)); then
		tail -n 40 "$out" >&2
		log "$target: FAILED: cargo fuzz exited with $rc (a crash input is saved under fuzz/artifacts/$target/)"
		failed+=("$target")
	elif result="$(fuzz_enough_runs "$out" "$min_execs")"; then
		log "$target: $result"
	else
		tail -n 40 "$out" >&2
		log "$target: FAILED: $result"
		failed+=("$target")
	fi
done

if ((${#failed[@]})); then
	log "FAILED: ${failed[*]} (of ${#targets[@]} targets)"
	exit 1
fi
log "all ${#targets[@]} targets ran ${secs}s each, at least $min_execs executions each, no crash"
