#!/usr/bin/env bash
# The Python binding's per-run cost against the Rust loop, in one run (bench/python.py).
#   bench/python.sh         (as root)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib.sh"
run_as_root "$ROOT/bench/python.sh" "$@"
scripts/build-test-images.sh >/dev/null
venv="$ROOT/.cache/venv-python"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "maturin>=1.7,<2"
"$venv/bin/pip" install -q --force-reinstall ./bindings-python
cargo build --release --example run_loop >&2
"$venv/bin/python" bench/python.py "$ROOT/.cache/images/busybox" "$ROOT/target/release/examples/run_loop" |
	tee bench/results/python.txt
