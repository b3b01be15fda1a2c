#!/usr/bin/env bash
# The Rust and Python judges against every sample of the language catalog, then the Node
# playground with a browser (called by scripts/test.sh after scripts/build-language-images.sh
# has built the catalog's images into $ISOLETTE_STORE and scripts/test-python.sh has
# installed the Python package into .cache/venv-python).
#
# Each sample is named for the verdict it must get: examples/languages/LANG/samples/VERDICT.EXT.
# examples/samples/ holds more Python and C++ ones, with their problem and verdict in its
# expected.json: a fork bomb (its forks refused by the pids limit, it ends at its cpu time),
# a signal, a blocked syscall, a sleeper, a flood of output, a compile that would write
# 1 GiB (held to the profile's file_bytes), and `reverse_ok` for the exact-compare problem.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cargo build --release -q -p isolette-examples
python="$ROOT/.cache/venv-python/bin/python"
[[ -x "$python" ]] || { echo "smoke: no $python: run scripts/test-python.sh first" >&2; exit 1; }
judges=("rust:$ROOT/target/release/judge" "python:$python examples/python/judge.py --parallel 2")
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

# check PROBLEM LANGUAGE SAMPLE EXPECTED: one line per judge in $results, FAIL when wrong.
check() {
	local got entry line
	for entry in "${judges[@]}"; do
		# shellcheck disable=SC2086 # the judge's command is words
		got="$(${entry#*:} --problem "examples/problems/$1" --language "$2" "$3" --json |
			python3 -c 'import json, sys; print(json.load(sys.stdin)["verdict"])')" || got="(the judge failed)"
		line="${entry%%:*} $2 ${3#examples/}: $got"
		[[ "$got" == "$4" ]] && echo "ok    $line" || echo "FAIL  $line, expected $4"
	done >"$results/$BASHPID"
}

# Two at a time (a judgement is mostly one core's work: a compile, then the tests).
jobs=0
queue() {
	if ((jobs >= 2)); then
		wait -n || true
		jobs=$((jobs - 1))
	fi
	check "$@" </dev/null &
	jobs=$((jobs + 1))
}
for sample in examples/languages/*/samples/*; do
	language="$(basename "$(dirname "$(dirname "$sample")")")"
	file="$(basename "$sample")"
	queue a-plus-b "$language" "$sample" "${file%.*}"
done
# The extra samples: examples/samples/expected.json gives each one's problem and verdict.
while read -r file problem verdict; do
	language=python3
	[[ "$file" == *.cpp ]] && language=cpp
	queue "$problem" "$language" "examples/samples/$file" "$verdict"
done < <(python3 -c 'import json
for f, e in json.load(open("examples/samples/expected.json")).items(): print(f, e["problem"], e["verdict"])')
[[ "$(find examples/samples -type f ! -name expected.json | wc -l)" == \
	"$(python3 -c 'import json; print(len(json.load(open("examples/samples/expected.json"))))')" ]] ||
	{ echo "smoke: examples/samples/expected.json does not name every sample" >&2; exit 1; }
wait
sort -k2 "$results"/* | tee "$results/all"
fail=0
grep -q '^FAIL' "$results/all" && fail=1
checked="$(wc -l <"$results/all")"
echo "smoke: $checked judgements, $(grep -c '^FAIL' "$results/all" || true) wrong"
# Not a check that cannot fail: too few judgements means samples went missing.
((checked >= 200)) || { echo "smoke: only $checked judgements" >&2; fail=1; }
"$ROOT/target/release/judge" --problem examples/problems/a-plus-b --language cpp examples/languages/cpp/samples/ok.cpp

# Bad input: an unknown language, a profile with a field missing. Each judge fails (exit 2)
# saying what is wrong, and leaves nothing behind.
broken="$results/catalog"
mkdir -p "$broken"
cp -r examples/languages/python3 examples/languages/c "$broken/"
python3 -c 'import json, sys; p = sys.argv[1]; d = json.load(open(p)); del d["pids"]; json.dump(d, open(p, "w"))' \
	"$broken/python3/language.json"
python3 -c 'import json, sys; p = sys.argv[1]; d = json.load(open(p)); del d["compile"]["file_bytes"]; json.dump(d, open(p, "w"))' \
	"$broken/c/language.json"
for entry in "${judges[@]}"; do
	for bad in "--language cobol:unknown language .cobol.; known: .*python3" \
		"--language python3 --languages $broken:language.json: the field .pids. is missing" \
		"--language c --languages $broken:language.json: the field .compile.file_bytes. is missing"; do
		# shellcheck disable=SC2086 # words
		out="$(${entry#*:} --problem examples/problems/a-plus-b ${bad%%:*} examples/languages/python3/samples/ok.py 2>&1)" && rc=0 || rc=$?
		if [[ "$rc" == 2 ]] && grep -q "${bad#*:}" <<<"$out"; then
			echo "ok    ${entry%%:*} ${bad%%:*}: $out"
		else
			echo "FAIL  ${entry%%:*} ${bad%%:*}: exit $rc, $out"
			fail=1
		fi
	done
done

# The playground: its HTTP API, and its page in a headless Chromium (Debian's).
source "$ROOT/scripts/lib.sh"
ensure_packages chromium
(cd examples/node && npm install --no-audit --no-fund --loglevel=error &&
	ISOLETTE_TEST_STRICT="${ISOLETTE_TEST_STRICT:-1}" node --test test.js) || fail=1
exit "$fail"
