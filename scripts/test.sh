#!/usr/bin/env bash
# Runs every test of isolette on this machine (as root, so sandboxes get full isolation;
# as another user it runs itself again through sudo). Installs what is missing first
# (scripts/setup.sh --deps). CI runs this through .ci/run with ISOLETTE_TEST_STRICT=1,
# which turns every "skipped: needs root/feature" into a failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "test: $*" >&2; }

source "$ROOT/scripts/lib.sh"
run_as_root "$ROOT/scripts/test.sh" "$@"

# Marks the start, to find what this run leaves in /tmp (older leftovers are not ours).
started="$(mktemp "${TMPDIR:-/tmp}/isolette-test-start.XXXXXX")"
trap 'rm -f "$started"' EXIT

# First, in a second: a broken script must not pass by skipping a step.
log "the scripts' own logic (scripts/selftest.sh: fuzz floor, apt guard)"
scripts/selftest.sh

scripts/setup.sh --deps
# The CLI tests run the static CLI that ships (musl, release), not cargo's debug build.
ISOLETTE_TEST_CLI="$(build_static_cli)"
export ISOLETTE_TEST_CLI

log "format and lints"
cargo fmt --all --check
# The init binary is built by core/build.rs, not as a module: fmt and clippy it on its own.
rustfmt --edition 2024 --check core/src/spawn/init/main.rs
mkdir -p target
clippy-driver --edition 2024 -C panic=abort --emit=metadata -o target/isolette-init-clippy.rmeta \
	-D warnings -D clippy::undocumented_unsafe_blocks core/src/spawn/init/main.rs
cargo clippy --all-targets --features cli -- -D warnings
cargo clippy -p isolette-python -- -D warnings
cargo clippy -p isolette-node -- -D warnings
cargo clippy -p isolette-examples -- -D warnings

log "rust tests (unit, integration on the real kernel, doc)"
cargo test --features cli

log "python package (bindings-python: pip install from source, pytest, the wheel in a fresh venv)"
scripts/test-python.sh

log "node package (bindings-node: npm install from source, node --test, tsc, npm pack in a fresh directory)"
scripts/test-node.sh

log "the same egress rules give the same verdicts from the CLI, Python and Node (scripts/test-egress-surfaces.py)"
.cache/venv-python/bin/python scripts/test-egress-surfaces.py

log "the language catalog (examples/languages/): every image built with isolette build, then again, all from the cache"
# A store of the tests' own, so that nothing here touches the default one.
export ISOLETTE_STORE="$ROOT/.cache/store"
started_at=$SECONDS
scripts/build-language-images.sh
log "the catalog was built in $((SECONDS - started_at)) s"
started_at=$SECONDS
scripts/build-language-images.sh --expect-cached
log "and again from the cache in $((SECONDS - started_at)) s"

log "the judges against every language's samples, one per verdict, and the playground in a browser (examples/smoke.sh)"
started_at=$SECONDS
examples/smoke.sh
log "the samples were judged in $((SECONDS - started_at)) s"

log "the judge fleet on Celery and Redis (examples/fleet): its API, and 1,000 submissions through killed workers and a stopped Redis"
ensure_packages redis-server
.cache/venv-python/bin/pip install -q -r examples/fleet/requirements.txt
started_at=$SECONDS
.cache/venv-python/bin/python -m pytest -q -p no:cacheprovider examples/fleet/test_fleet.py
log "the fleet's tests took $((SECONDS - started_at)) s"

log "the Compose example (examples/compose): built, up, counted, down, up, down -v, and nothing left"
started_at=$SECONDS
examples/compose/test.sh "$ISOLETTE_TEST_CLI"
log "the Compose example took $((SECONDS - started_at)) s"
unset ISOLETTE_STORE

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
# Ours, and the examples' (a judge's and the playground's directories for a submission).
left="$(find "${TMPDIR:-/tmp}" -maxdepth 1 \( -name 'isolette-*' -o -name 'judge-*' -o -name 'playground-*' \) \
	-newer "$started" ! -path "$started" | head -n 5)"
[[ -z "$left" ]] || { log "left in ${TMPDIR:-/tmp} by this run: ${left//$'\n'/ }"; exit 1; }
log "all tests passed"
