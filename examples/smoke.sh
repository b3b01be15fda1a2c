#!/usr/bin/env bash
# The Rust judge against the sample submissions (called by scripts/test.sh, after the test
# images are built): each sample is named for the verdict the judge must give
# (`examples/samples/VERDICT.py` and `.cpp`; a fork bomb, whose forks the pids limit
# refuses, ends at its cpu time; `reverse_ok` is for the exact-compare problem).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cargo build --release -q -p isolette-examples
judge="$ROOT/target/release/judge"
fail=0
check() { # problem language sample expected
	local got
	got="$("$judge" --problem "examples/problems/$1" --language "$2" "examples/samples/$3" --json |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["verdict"])')"
	if [[ "$got" == "$4" ]]; then echo "ok    $2 $3: $got"; else echo "FAIL  $2 $3: $got, expected $4"; fail=1; fi
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
"$judge" --problem examples/problems/a-plus-b --language cpp examples/samples/ok.cpp
exit "$fail"
