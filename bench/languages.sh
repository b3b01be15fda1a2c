#!/usr/bin/env bash
# Hello world in every language of the catalog, in a sandbox and without one, in one run
# (bench/languages.py says how). Builds the catalog first (all from the cache when it is
# built already) into $ISOLETTE_STORE (default /var/lib/isolette).
#   bench/languages.sh [RUNS]        (as root)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib.sh"
run_as_root "$ROOT/bench/languages.sh" "$@"
scripts/build-language-images.sh
venv="$ROOT/.cache/venv-python"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "maturin>=1.7,<2"
"$venv/bin/pip" install -q --force-reinstall ./bindings-python
mkdir -p bench/results
"$venv/bin/python" bench/languages.py "$@" | tee bench/results/languages.txt
