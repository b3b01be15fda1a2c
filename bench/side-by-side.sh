#!/usr/bin/env bash
# isolette side by side with bubblewrap, crun, nsjail and isolate, in one run, then a plot.
#
#   bench/side-by-side.sh            (as root; ISOLETTE_BENCH_RUNS=N for N runs per row)
#
# bubblewrap and crun come from apt (installed when missing). nsjail and isolate 1.10 are
# built from their sources by hand (the project ships no recipe for them): point NSJAIL
# and ISOLATE at the binaries, or put them on PATH; each row is skipped, with a message,
# when its tool is missing. Results: bench/results/latest.{txt,json,png}.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "bench: $*" >&2; }
source "$ROOT/scripts/lib.sh"
run_as_root "$ROOT/bench/side-by-side.sh" "$@"

ensure_packages bubblewrap crun jq python3-venv
scripts/build-test-images.sh >/dev/null
rootfs="$ROOT/.cache/images/busybox"
work="$ROOT/.cache/bench"
mkdir -p "$work" bench/results

# crun: one bundle per workload, the busybox rootfs read-only, /bin/true, no terminal.
for w in w1 w2; do
	b="$work/crun-$w"
	rm -rf "$b" && mkdir -p "$b"
	(cd "$b" && crun spec --rootless=false >/dev/null 2>&1 || crun spec)
	limits='{}'
	[[ $w == w2 ]] && limits='{"memory":{"limit":268435456,"swap":268435456},"pids":{"limit":64}}'
	jq --arg root "$rootfs" --argjson limits "$limits" \
		'.root = {path: $root, readonly: true} | .process.args = ["/bin/true"] | .process.terminal = false
		 | .linux.resources = ((.linux.resources // {}) + $limits) | .hostname = "bench"' \
		"$b/config.json" >"$b/config.json.new"
	mv "$b/config.json.new" "$b/config.json"
done
export BWRAP="$(command -v bwrap)" CRUN="$(command -v crun)"
export CRUN_BUNDLE_W1="$work/crun-w1" CRUN_BUNDLE_W2="$work/crun-w2"

# nsjail and isolate: built by hand, found through NSJAIL/ISOLATE or PATH.
NSJAIL="${NSJAIL:-$(command -v nsjail || true)}"
ISOLATE="${ISOLATE:-$(command -v isolate || true)}"
[[ -n "$NSJAIL" ]] && export NSJAIL || log "nsjail not found (set NSJAIL): its rows are skipped"
if [[ -n "$ISOLATE" ]]; then
	# nsjail's and isolate's cgroup parents (v1) are theirs; make the ones nsjail expects.
	export ISOLATE ISOLATE_BOX="${ISOLATE_BOX:-91}"
	"$ISOLATE" --cg --box-id="$ISOLATE_BOX" --cleanup >/dev/null 2>&1 || true
	"$ISOLATE" --cg --box-id="$ISOLATE_BOX" --init >/dev/null
	trap '"$ISOLATE" --cg --box-id="$ISOLATE_BOX" --cleanup >/dev/null 2>&1 || true' EXIT
else
	log "isolate not found (set ISOLATE): its rows are skipped"
fi
if [[ -n "$NSJAIL" ]]; then
	for c in memory pids; do
		[[ -d /sys/fs/cgroup/$c ]] && mkdir -p "/sys/fs/cgroup/$c/NSJAIL"
	done
fi

# The CLI rows time the static CLI that scripts/setup.sh builds, as users run it.
ISOLETTE_CLI="$(build_static_cli)"
export ISOLETTE_CLI ISOLETTE_BENCH_JSON="$ROOT/bench/results/latest.json"
log "building (release) and running; a few minutes"
cargo bench --features cli --bench side_by_side | tee bench/results/latest.txt

venv="$ROOT/.cache/venv-bench"
[[ -x "$venv/bin/python" ]] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib; }
"$venv/bin/python" bench/plot.py bench/results/latest.json bench/results/latest.png
log "plot: bench/results/latest.png"
