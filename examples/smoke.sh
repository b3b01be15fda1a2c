#!/usr/bin/env bash
# The Rust and Python judges against the sample submissions, then the Node playground with
# a browser (called by scripts/test.sh,
# after the test images are built and scripts/test-python.sh has installed the Python
# package into .cache/venv-python): each sample is named for the verdict they must give
# (`examples/samples/VERDICT.py` and `.cpp`; a fork bomb, whose forks the pids limit
# refuses, ends at its cpu time; `reverse_ok` is for the exact-compare problem).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cargo build --release -q -p isolette-examples
python="$ROOT/.cache/venv-python/bin/python"
[[ -x "$python" ]] || { echo "smoke: no $python: run scripts/test-python.sh first" >&2; exit 1; }
judges=("rust:$ROOT/target/release/judge" "python:$python examples/python/judge.py --parallel 2")
fail=0
check() { # problem language sample expected
	local got entry
	for entry in "${judges[@]}"; do
		# shellcheck disable=SC2086 # the judge's command is words
		got="$(${entry#*:} --problem "examples/problems/$1" --language "$2" "examples/samples/$3" --json |
			python3 -c 'import json, sys; print(json.load(sys.stdin)["verdict"])')"
		if [[ "$got" == "$4" ]]; then
			echo "ok    ${entry%%:*} $2 $3: $got"
		else
			echo "FAIL  ${entry%%:*} $2 $3: $got, expected $4"
			fail=1
		fi
	done
}
for sample in examples/samples/*.py examples/samples/*.cpp; do
	file="$(basename "$sample")"
	name="${file%.*}"
	language=python3
	[[ "$file" == *.cpp ]] && language=cpp
	case "$name" in
	reverse_ok) check reverse-lines "$language" "$file" ok ;;
	fork_bomb) check a-plus-b "$language" "$file" cpu_time_limit ;;
	*) check a-plus-b "$language" "$file" "$name" ;;
	esac
done
"$ROOT/target/release/judge" --problem examples/problems/a-plus-b --language cpp examples/samples/ok.cpp

# The playground: its HTTP API, and its page in a headless Chromium (Debian's).
source "$ROOT/scripts/lib.sh"
ensure_packages chromium
(cd examples/node && npm install --no-audit --no-fund --loglevel=error &&
	ISOLETTE_TEST_STRICT="${ISOLETTE_TEST_STRICT:-1}" node --test test.js) || fail=1
exit "$fail"
