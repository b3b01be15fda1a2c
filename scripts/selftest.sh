#!/usr/bin/env bash
# Tests the logic of the scripts in this folder that can be tested on its own, in about a
# second, with no root, no network and whatever packages the host has: that every script
# parses, the fuzz floor check of fuzz.sh, and the apt guard of ensure_packages, against a
# stub apt-get that prints a made-up simulation.
#   scripts/selftest.sh
# Ends with "selftest: N passed, M failed"; exits non-zero on any failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
log() { echo "selftest: $*" >&2; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/isolette-selftest.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

passed=0 failed=0
# check NAME COMMAND...: one test; COMMAND's status is the verdict.
check() {
	local name="$1"
	shift
	if "$@"; then
		passed=$((passed + 1))
		echo "ok    $name"
	else
		failed=$((failed + 1))
		echo "FAIL  $name"
	fi
}
# not COMMAND...: true when COMMAND fails (`!` would also hide a crash of the test itself).
not() { if "$@"; then return 1; fi; }

# ------------------------------------------------------------------ syntax
for f in "$ROOT"/scripts/*.sh "$ROOT"/.ci/run; do
	check "bash -n ${f#"$ROOT"/}" bash -n "$f"
done

# --------------------------------------------------------- fuzz floor check
# Closing lines of real libFuzzer runs (cargo fuzz run ... -print_final_stats=1).
cat >"$tmp/fuzz-enough" <<'EOF'
#52311	DONE   cov: 1021 ft: 2409 corp: 233/9Kb lim: 4096 exec/s: 1743 rss: 95Mb
Done 52311 runs in 31 second(s)
stat::number_of_executed_units: 52311
stat::average_exec_per_sec:     1687
stat::new_units_added:          12
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              95
EOF
cat >"$tmp/fuzz-few" <<'EOF'
#120	DONE   cov: 310 ft: 400 corp: 20/1Kb lim: 4 exec/s: 4 rss: 40Mb
Done 120 runs in 30 second(s)
stat::number_of_executed_units: 120
stat::average_exec_per_sec:     4
EOF
# What the image_layout target printed while its seed corpus directory was missing.
cat >"$tmp/fuzz-none" <<'EOF'
INFO: Running with entropic power schedule (0xFF, 100).
INFO: Seed: 2718281828
ERROR: The required directory "corpus/image_layout" does not exist
Error: Fuzz target exited with exit status: 1
EOF
printf 'Done 5000 runs in 30 second(s)\n' >"$tmp/fuzz-done-only"
printf 'INFO: 1000 runs and stat::number_of_executed_units: lookalike\n' >"$tmp/fuzz-lookalike"
: >"$tmp/fuzz-empty"

quiet() { "$@" >/dev/null; }
check "fuzz: 52311 executions pass a floor of 1000" quiet fuzz_enough_runs "$tmp/fuzz-enough" 1000
check "fuzz: the stat line is the count (52311)" test "$(fuzz_executions <"$tmp/fuzz-enough")" = 52311
check "fuzz: 120 executions fail a floor of 1000" not quiet fuzz_enough_runs "$tmp/fuzz-few" 1000
check "fuzz: a run that never started fails" not quiet fuzz_enough_runs "$tmp/fuzz-none" 1
check "fuzz: empty output fails" not quiet fuzz_enough_runs "$tmp/fuzz-empty" 1
check "fuzz: counts appearing mid-line are not counts" not quiet fuzz_enough_runs "$tmp/fuzz-lookalike" 1
check "fuzz: 'Done N runs' alone counts" quiet fuzz_enough_runs "$tmp/fuzz-done-only" 1000

# -------------------------------------------------------------- apt guard
# Stubs first on PATH: apt-get logs every call and prints $STUB_PLAN for a simulation (-s);
# dpkg-query knows only the packages in $STUB_INSTALLED; sudo just runs its command.
stub="$tmp/bin"
mkdir -p "$stub"
cat >"$stub/apt-get" <<'EOF'
#!/bin/sh
echo "apt-get $*" >>"$STUB_LOG"
case " $* " in *" -s "*) cat "$STUB_PLAN"; exit "${STUB_SIM_STATUS:-0}" ;; esac
EOF
cat >"$stub/dpkg-query" <<'EOF'
#!/bin/sh
for p; do :; done
case " $STUB_INSTALLED " in *" $p "*) echo installed ;; *) exit 1 ;; esac
EOF
printf '#!/bin/sh\nexec "$@"\n' >"$stub/sudo"
chmod 0755 "$stub"/*

cat >"$tmp/plan-remove" <<'EOF'
NOTE: This is only a simulation!
Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]
Inst seabios (1.16.2-1 Debian:12.15/oldstable [all])
Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])
Conf qemu-system-x86 (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])
EOF
cat >"$tmp/plan-downgrade" <<'EOF'
Inst libfoo1 [2.0-1] (1.5-3 Debian:12.15/oldstable [amd64])
Inst foo (1.5-3 Debian:12.15/oldstable [amd64])
EOF
cat >"$tmp/plan-clean" <<'EOF'
Inst libsystemd0 [252.38-1~deb12u1] (252.39-1~deb12u2 Debian:12.15/oldstable [amd64])
Inst kmod (30+20221128-1 Debian:12.15/oldstable [amd64])
Conf kmod (30+20221128-1 Debian:12.15/oldstable [amd64])
EOF

# guard PLAN INSTALLED PACKAGE...: runs ensure_packages against the stubs; its status is
# ensure_packages's, its messages go to $tmp/err, the apt-get calls to $tmp/apt.log.
# $sim_status is the exit status of the stub's simulation.
sim_status=0
guard() {
	local plan="$1" installed="$2"
	shift 2
	: >"$tmp/apt.log"
	(
		export PATH="$stub:$PATH" STUB_LOG="$tmp/apt.log" STUB_PLAN="$tmp/$plan" STUB_INSTALLED="$installed" \
			STUB_SIM_STATUS="$sim_status"
		ensure_packages "$@"
	) 2>"$tmp/err"
}
# An apt-get call that is an install and not a simulation.
installed_something() { grep ' install ' "$tmp/apt.log" | grep -qv ' -s '; }
mentions() { grep -q -- "$1" "$tmp/err"; }

check "apt guard: refuses a plan that removes a package" not guard plan-remove "" qemu-system-x86
check "apt guard: ... installs nothing" not installed_something
check "apt guard: ... and names what would go" mentions 'remove qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1'
check "apt guard: refuses a plan that downgrades a package" not guard plan-downgrade "" foo
check "apt guard: ... installs nothing" not installed_something
check "apt guard: ... and names the downgrade" mentions 'downgrade libfoo1 2.0-1 -> 1.5-3'
check "apt guard: installs when the plan only adds and upgrades" guard plan-clean "" kmod
check "apt guard: ... with --no-remove" grep -q -- 'install -y -qq --no-install-recommends --no-remove kmod$' "$tmp/apt.log"
check "apt guard: installed packages need no apt at all" guard plan-remove "qemu-system-x86 gcc" gcc qemu-system-x86
check "apt guard: ... not even a simulation" test ! -s "$tmp/apt.log"
sim_status=100 # apt cannot resolve the request at all
check "apt guard: a failed simulation fails" not guard plan-clean "" kmod
check "apt guard: ... and installs nothing" not installed_something
sim_status=0
check "apt plan: the packages to download, name=version" test "$(apt_plan_installs <"$tmp/plan-clean" | paste -sd' ')" = \
	"libsystemd0=252.39-1~deb12u2 kmod=30+20221128-1"

echo "selftest: $passed passed, $failed failed"
((failed == 0))
