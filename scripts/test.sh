#!/usr/bin/env bash
# Runs every test of isolette on this machine (as root, so sandboxes get full isolation).
# Installs what is missing first (scripts/setup.sh --deps). CI runs this through .ci/run
# with ISOLETTE_TEST_STRICT=1, which turns every "skipped: needs root/feature" into a failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "test: $*" >&2; }

scripts/setup.sh --deps

log "format and lints"
cargo fmt --all --check
cargo clippy --all-targets --features cli --quiet -- -D warnings

log "rust tests (unit, integration on the real kernel, doc)"
cargo test --features cli

log "fuzz every parser of outside input briefly (fuzz/README.md)"
scripts/fuzz.sh 30

log "cgroup tests again on a real cgroup v2 kernel (QEMU + virtme-ng)"
scripts/test-cgroup-v2.sh

log "nothing of ours is left on the host"
left=$(grep -c isolette /proc/self/mountinfo || true)
[[ "$left" == 0 ]] || { log "mounts naming isolette are left: $left"; exit 1; }
for d in /sys/fs/cgroup/*/isolette /sys/fs/cgroup/isolette; do
	[[ -d "$d" ]] || continue
	n=$(find "$d" -mindepth 1 -type d | wc -l)
	[[ "$n" == 0 ]] || { log "cgroups left under $d: $n"; exit 1; }
done
log "all tests passed"
