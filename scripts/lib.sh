# shellcheck shell=bash
# Shared by the scripts in this folder: `source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"`.
# Functions only; nothing runs on sourcing (scripts/selftest.sh tests them on their own).

# Re-runs the calling script as root when it is not root: through sudo, keeping PATH, the
# user's Rust (CARGO_HOME, RUSTUP_HOME) and the ISOLETTE_* knobs, all of which sudo would
# otherwise reset. Without sudo it says what to do. Call it first: `run_as_root SCRIPT "$@"`.
run_as_root() {
	local script="$1" name keep=()
	shift
	((EUID != 0)) || return 0
	if ! command -v sudo >/dev/null; then
		echo "$(basename "$script"): needs root, and sudo is not installed: run it from a root shell (su -), or install sudo" >&2
		exit 1
	fi
	keep=("PATH=$PATH")
	# The user's rustup install, unless set elsewhere: root's HOME has none.
	if [[ -n "${CARGO_HOME:-}" ]]; then keep+=("CARGO_HOME=$CARGO_HOME"); elif [[ -d "$HOME/.cargo" ]]; then keep+=("CARGO_HOME=$HOME/.cargo"); fi
	if [[ -n "${RUSTUP_HOME:-}" ]]; then keep+=("RUSTUP_HOME=$RUSTUP_HOME"); elif [[ -d "$HOME/.rustup" ]]; then keep+=("RUSTUP_HOME=$HOME/.rustup"); fi
	for name in $(compgen -e); do
		[[ "$name" != ISOLETTE_* ]] || keep+=("$name=${!name}")
	done
	echo "$(basename "$script"): not root: running it again through sudo" >&2
	# `sudo env ...`, not --preserve-env: Debian's secure_path would replace PATH anyway.
	exec sudo env "${keep[@]}" bash "$script" "$@"
}

# True when the Debian package $1 is installed (not merely known, or removed with its
# configuration left, which `dpkg -s` also accepts).
package_installed() {
	dpkg-query -W -f '${db:Status-Status}\n' "$1" 2>/dev/null | grep -x installed >/dev/null
}

# Reads an `apt-get install -s` simulation on stdin and prints one line per change to a
# package already on the host that no script of ours may make: "remove NAME VERSION" or
# "downgrade NAME OLD -> NEW". Prints nothing when the plan only adds or upgrades.
apt_plan_problems() {
	local word name old new
	while read -r word name old new _; do
		case "$word" in
		Remv | Purg) echo "remove $name ${old//[][]/}" ;;
		Inst)
			# "Inst NAME [OLD] (NEW ...)" changes an installed package; "Inst NAME (NEW ...)" adds one.
			[[ "$old" == \[*\] ]] || continue
			old="${old//[][]/}" new="${new#(}"
			if dpkg --compare-versions "$new" lt "$old"; then echo "downgrade $name $old -> $new"; fi
			;;
		esac
	done
	return 0
}

# Reads an `apt-get install -s` simulation on stdin and prints NAME=VERSION for every
# package it would unpack (new or upgraded): what `apt-get download` needs to fetch the
# same set.
apt_plan_installs() {
	awk '$1 == "Inst" { v = ($3 ~ /^\[/) ? $4 : $3; sub(/^\(/, "", v); print $2 "=" v }'
}

# Installs the Debian packages among "$@" that are missing (as root, or through sudo).
# Never removes or downgrades a package: apt resolves a conflict by removing the installed
# side (Debian 12's qemu-system-x86 removes a backported qemu-utils 10.0, for example), so
# the install is simulated first and refused, installing nothing, when the plan would.
ensure_packages() {
	local missing=() p sudo=() plan problems
	for p in "$@"; do
		package_installed "$p" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	[[ $EUID -eq 0 ]] || sudo=(sudo)
	# Explicit returns: callers may run this where `set -e` does not apply (`a || ensure_packages b`).
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
	plan="$(LC_ALL=C apt-get install -s -y --no-install-recommends "${missing[@]}")" || {
		echo "apt cannot install ${missing[*]} (see its message above); nothing was installed" >&2
		return 1
	}
	problems="$(apt_plan_problems <<<"$plan")" || return 1
	if [[ -n "$problems" ]]; then
		{
			echo "refusing to install ${missing[*]}: apt would change packages this host already has:"
			while IFS= read -r p; do echo "  $p"; done <<<"$problems"
			echo "Nothing was installed. If that change is acceptable, make it yourself"
			echo "(apt-get install --no-install-recommends ${missing[*]}) and run this again;"
			echo "otherwise install these packages another way, or use a host without the conflict."
		} >&2
		return 1
	fi
	echo "installing missing packages: ${missing[*]}" >&2
	# --no-remove: apt aborts rather than remove anything, should the plan change in between.
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-remove \
		"${missing[@]}" >&2 || return 1
}

# Prints how many inputs a libFuzzer run executed, read from its output on stdin: the last
# `stat::number_of_executed_units: N` (-print_final_stats=1), else the last `Done N runs`.
# Fails, printing nothing, when the output has neither (the fuzzer never ran).
fuzz_executions() {
	awk '
		$1 == "stat::number_of_executed_units:" && $2 ~ /^[0-9]+$/ { stat = $2 }
		$1 == "Done" && $2 ~ /^[0-9]+$/ && $3 == "runs" { done = $2 }
		END { n = (stat != "") ? stat : done; if (n == "") exit 1; print n }'
}

# fuzz_enough_runs LOG FLOOR: true when the libFuzzer output in LOG reports at least FLOOR
# executed inputs. Prints one line saying what it found, either way.
fuzz_enough_runs() {
	local log="$1" floor="$2" n
	if ! n="$(fuzz_executions <"$log")"; then
		echo "no execution count in the fuzzer's output: it did not run"
		return 1
	fi
	if ((n < floor)); then
		echo "$n executions, below the floor of $floor: it barely ran"
		return 1
	fi
	echo "$n executions (floor $floor)"
}

# Builds the release CLI as a static, non-PIE executable for musl and prints its path.
# Static: no dynamic loader and no relocations at each start (0.4 ms of every run on these
# machines, and the binary runs on any x86-64 Linux). musl: static glibc probes the cpu's
# caches with CPUID at every start, which traps to the hypervisor in a VM: 0.73 ms to
# exec an empty static-glibc program against 0.11 ms for musl here. Needs rustup's musl
# target and musl-gcc (package musl-tools, for ring's C); without the target it falls
# back, saying so, to static glibc.
build_static_cli() {
	local target=x86_64-unknown-linux-musl
	if ! rustup target list --installed 2>/dev/null | grep -qx "$target" &&
		! rustup target add "$target" >&2; then
		target="$(rustc -vV | sed -n 's/^host: //p')"
		echo "build_static_cli: rustup could not add the musl target: building for $target (static glibc, about 0.6 ms slower per run)" >&2
	fi
	# The target is passed explicitly so the flags reach only this binary, not build
	# scripts or proc macros.
	CC_x86_64_unknown_linux_musl=musl-gcc \
		RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
		cargo build --release --features cli --bin isolette --target "$target" >&2
	echo "$ROOT/target/$target/release/isolette"
}

# The Debian mirror apt uses for suite $1 (deb822 or one-line sources; ISOLETTE_DEBIAN_MIRROR
# overrides it; deb.debian.org when apt names none).
debian_mirror() {
	local suite="$1"
	if [[ -n "${ISOLETTE_DEBIAN_MIRROR:-}" ]]; then
		echo "$ISOLETTE_DEBIAN_MIRROR"
		return
	fi
	local f uri=""
	shopt -s nullglob
	for f in /etc/apt/sources.list.d/*.sources; do
		uri="$(awk -v suite="$suite" '
			function flush() {
				if (types ~ /(^|[ \t])deb($|[ \t])/ && (" " suites " ") ~ ("[ \t]" suite "[ \t]") && uris != "" && found == "") {
					split(uris, u, /[ \t]+/); found = u[1]
				}
				types = ""; suites = ""; uris = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			tolower($1) == "types:"  { $1 = ""; types = $0 }
			tolower($1) == "suites:" { $1 = ""; suites = $0 }
			tolower($1) == "uris:"   { $1 = ""; sub(/^[ \t]+/, ""); uris = $0 }
			END { flush(); if (found != "") print found }
		' "$f")"
		[[ -z "$uri" ]] || break
	done
	if [[ -z "$uri" ]]; then
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[[ -r "$f" ]] || continue
			uri="$(awk -v suite="$suite" '
				$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				              if ($(i + 1) == suite) { print $i; exit } }' "$f")"
			[[ -z "$uri" ]] || break
		done
	fi
	shopt -u nullglob
	echo "${uri:-http://deb.debian.org/debian}"
}
