#!/usr/bin/env bash
# The Python package's tests (called by scripts/test.sh, as root, after the test images
# are built): `pip install ./bindings-python` from source into a venv, its pytest suite,
# then the wheel `maturin build --release` makes, installed into a second, fresh venv
# with no Rust in reach, running a program.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "test-python: $*" >&2; }
source "$ROOT/scripts/lib.sh"

python="${PYTHON:-python3}"
venv="$ROOT/.cache/venv-python"
if ! "$python" -m venv --help >/dev/null 2>&1; then
	ensure_packages python3-venv
fi
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "maturin>=1.7,<2" pytest mypy

log "pip install ./bindings-python (from source, with Rust)"
"$venv/bin/pip" install -q --force-reinstall ./bindings-python

log "pytest (strict: a skip is a failure)"
# From the tests' directory, so that `import isolette` is the installed package.
(cd bindings-python/tests && ISOLETTE_TEST_STRICT="${ISOLETTE_TEST_STRICT:-1}" "$venv/bin/python" -m pytest -q -p no:cacheprovider .)

log "mypy --strict on the package and the example that uses it"
"$venv/bin/python" -m mypy --strict bindings-python/python/isolette examples/python/judge.py

log "maturin build --release: a wheel, installed into a fresh venv without Rust"
wheels="$ROOT/.cache/wheels"
rm -rf "$wheels"
(cd bindings-python && "$venv/bin/maturin" build --release -q -o "$wheels")
fresh="$(mktemp -d "${TMPDIR:-/tmp}/wheel-venv.XXXXXX")"
trap 'rm -rf "$fresh"' EXIT
"$python" -m venv "$fresh"
"$fresh/bin/pip" install -q "$wheels"/isolette-*.whl
out="$(cd / && env -i PATH=/usr/bin:/bin "$fresh/bin/python" -c "import isolette; print(isolette.run(isolette.Image.open('$ROOT/.cache/images/busybox'), ['/bin/echo','hi']).stdout)")"
[[ "$out" == "b'hi\\n'" ]] || { log "the wheel's run printed: $out"; exit 1; }
log "the wheel works: $out ($(basename "$wheels"/isolette-*.whl))"
