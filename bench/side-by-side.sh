#!/usr/bin/env bash
# isolette side by side with bubblewrap, crun, nsjail and isolate, in one run, then a plot.
#
#   bench/side-by-side.sh            (as root; ISOLETTE_BENCH_RUNS=N for N runs per row)
#
# bubblewrap and crun come from apt (installed when missing). nsjail and isolate 1.10 are
# built from their sources by hand (the project ships no recipe for them): point NSJAIL
# and ISOLATE at the binaries, or put them on PATH; each row is skipped, with a message,
# when its tool is missing. Results: bench/results/latest.{txt,json,png}. A run over which
# the quietness gauge (fork+exit+wait, before and after) drifted more than 1.3x is marked
# NOT PUBLISHABLE in all three: the README's figures come from a quiet run.
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
	# No /sys mounts: crun makes their mount points in the rootfs, which is the test image.
	jq --arg root "$rootfs" --argjson limits "$limits" \
		'.root = {path: $root, readonly: true} | .process.args = ["/bin/true"] | .process.terminal = false
		 | .mounts |= map(select(.destination | startswith("/sys") | not))
		 | .linux.resources = ((.linux.resources // {}) + $limits) | .hostname = "bench"' \
		"$b/config.json" >"$b/config.json.new"
	mv "$b/config.json.new" "$b/config.json"
done
export BWRAP="$(command -v bwrap)" CRUN="$(command -v crun)"
export CRUN_BUNDLE_W1="$work/crun-w1" CRUN_BUNDLE_W2="$work/crun-w2"

# nsjail and isolate: built by hand, found through NSJAIL/ISOLATE or PATH. isolate's own
# setup (its config, and on cgroup v1 its cg_parent directories) is done by hand too.
NSJAIL="${NSJAIL:-$(command -v nsjail || true)}"
ISOLATE="${ISOLATE:-$(command -v isolate || true)}"
# Anchors whose rows are missing, said at the top of the results as well as here.
missing=()
if [[ -n "$NSJAIL" ]]; then
	export NSJAIL
	# nsjail's v1 cgroup parents, which it expects to exist.
	for c in memory pids; do
		if [[ -d /sys/fs/cgroup/$c ]]; then mkdir -p "/sys/fs/cgroup/$c/NSJAIL"; fi
	done
else
	log "nsjail not found (set NSJAIL): its rows are skipped"
	missing+=("missing: nsjail rows (nsjail not found; set NSJAIL)")
fi
if [[ -n "$ISOLATE" ]]; then
	# Boxes made once and reused by every run, as a judge uses them: W1 without cgroups,
	# W2 with (two, one per worker of the throughput row); ids 90 to 92 unless
	# ISOLATE_BOX1..3 say otherwise.
	export ISOLATE ISOLATE_BOX1="${ISOLATE_BOX1:-90}" ISOLATE_BOX2="${ISOLATE_BOX2:-91}" ISOLATE_BOX3="${ISOLATE_BOX3:-92}"
	# The binary in a variable of its own: ISOLATE is unset when its rows are skipped, and
	# the clean-up at exit still needs it.
	isolate_bin="$ISOLATE"
	isolate_boxes() {
		"$isolate_bin" --box-id="$ISOLATE_BOX1" "$1" >/dev/null 2>&1 &&
			"$isolate_bin" --cg --box-id="$ISOLATE_BOX2" "$1" >/dev/null 2>&1 &&
			"$isolate_bin" --cg --box-id="$ISOLATE_BOX3" "$1" >/dev/null 2>&1
	}
	trap 'isolate_boxes --cleanup || true' EXIT
	isolate_boxes --cleanup || true
	if ! isolate_boxes --init; then
		log "isolate --init failed: its rows are skipped"
		missing+=("missing: isolate rows (isolate --init failed)")
		unset ISOLATE
	fi
else
	log "isolate not found (set ISOLATE): its rows are skipped"
	missing+=("missing: isolate rows (isolate not found; set ISOLATE)")
fi

# The CLI rows time the static CLI that scripts/setup.sh builds, as users run it.
ISOLETTE_CLI="$(build_static_cli)"
export ISOLETTE_CLI ISOLETTE_BENCH_JSON="$ROOT/bench/results/latest.json"
log "building (release) and running; a few minutes"
{
	((${#missing[@]} == 0)) || printf '%s\n' "${missing[@]}"
	cargo bench --features cli --bench side_by_side
} | tee bench/results/latest.txt

venv="$ROOT/.cache/venv-bench"
[[ -x "$venv/bin/python" ]] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib; }
"$venv/bin/python" bench/plot.py bench/results/latest.json bench/results/latest.png
log "plot: bench/results/latest.png"
if jq -e '.quietness.publishable == false' bench/results/latest.json >/dev/null; then
	log "NOT PUBLISHABLE: the quietness gauge drifted more than 1.3x over the run (other work on the machine); run it again on a quiet machine"
fi
