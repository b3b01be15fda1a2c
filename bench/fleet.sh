#!/usr/bin/env bash
# The judge fleet under load (bench/fleet.py says what is measured), in one run.
#   bench/fleet.sh [WORKERS] [SUBMISSIONS]        (as root)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib.sh"
run_as_root "$ROOT/bench/fleet.sh" "$@"
ensure_packages redis-server
scripts/build-language-images.sh
venv="$ROOT/.cache/venv-python"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "maturin>=1.7,<2" -r examples/fleet/requirements.txt
"$venv/bin/pip" install -q ./bindings-python
mkdir -p bench/results
"$venv/bin/python" bench/fleet.py "$@" | tee bench/results/fleet.txt
