#!/usr/bin/env bash
# Runs isolette's cgroup integration tests (`limits` and `cleanup`) on a real cgroup v2
# kernel: boots Debian's kernel in QEMU (software emulation, no KVM needed) with
# virtme-ng, which shares the host's filesystem read-only with the guest, and runs the
# test binaries built here inside it, as root, with ISOLETTE_TEST_STRICT=1.
#
#   scripts/test-cgroup-v2.sh [--no-install] [--cargo-json FILE] [--boot-check]
#
#   --no-install        fail instead of installing missing packages, QEMU or virtme-ng
#   --cargo-json FILE   take the test binaries from the saved output of
#                       `cargo test --features cli --no-run --message-format=json`
#                       instead of running that command
#   --boot-check        install what is missing, boot the VM and show its kernel and
#                       cgroups, without building or running any test (15-40 s)
#
# Installs when missing (as root): linux-image-amd64, busybox-static (virtme-ng's
# initramfs and the test image), kmod, gcc, libc6-dev, jq from apt (never removing or
# downgrading a package: see ensure_packages in lib.sh); virtme-ng from PyPI into
# .cache/venv-vng. QEMU is NOT installed: a qemu-system-x86_64 already on PATH is used,
# else Debian's qemu-system-x86 and the libraries it needs are downloaded and unpacked
# into .cache/qemu, because installing it removes a backported qemu-utils on our hosts.
# Exit status: the tests' (0 = all passed); 2 = usage; 3 = the VM gave no result (boot
# failure, crash or timeout); 4 = the guest is not on cgroup v2.
#
# Knobs: ISOLETTE_V2_KERNEL (a vmlinuz; default: the one linux-image-amd64 installed),
# ISOLETTE_V2_TIMEOUT (seconds for the whole VM run, default 600), ISOLETTE_V2_CPUS (2),
# ISOLETTE_V2_MEMORY (2G), ISOLETTE_V2_TESTS (default "limits cleanup pool running"),
# ISOLETTE_V2_VNG_VERSION (virtme-ng version from PyPI, default 1.42),
# ISOLETTE_V2_TEST_ARGS (extra arguments for the test binaries, e.g. a test name filter),
# ISOLETTE_V2_SYSTEMD_LIKE (default 1: enable every controller in the root's cgroup.subtree_control
# before the tests, as systemd does on most v2 hosts; with 0 the guest's root cgroup is
# left as the kernel boots it, with nothing enabled, as on hosts without systemd).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { echo "test-cgroup-v2: $*" >&2; }
die() {
	log "error: $1"
	exit "${2:-1}"
}

install=1
cargo_json=""
boot_check=0
while (($#)); do
	case "$1" in
	--no-install) install=0 ;;
	--boot-check) boot_check=1 ;;
	--cargo-json)
		[[ $# -ge 2 ]] || die "--cargo-json needs a file" 2
		cargo_json="$2"
		shift
		;;
	-h | --help)
		sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
		exit 0
		;;
	*) die "unknown argument: $1 (try --help)" 2 ;;
	esac
	shift
done

[[ $EUID -eq 0 ]] || die "run as root: the tests need root inside the VM, and apt needs it here"

VENV="$ROOT/.cache/venv-vng"
QEMU_CACHE="$ROOT/.cache/qemu"
RUN_DIR="$ROOT/.cache/vng-v2"           # shared read-write with the guest
TIMEOUT="${ISOLETTE_V2_TIMEOUT:-600}"
CPUS="${ISOLETTE_V2_CPUS:-2}"
MEMORY="${ISOLETTE_V2_MEMORY:-2G}"
TESTS="${ISOLETTE_V2_TESTS:-limits cleanup pool running}"
VNG_VERSION="${ISOLETTE_V2_VNG_VERSION:-1.42}"

declare -A took=()
phase_start=$SECONDS
phase_end() { took[$1]=$((SECONDS - phase_start)); phase_start=$SECONDS; }

# ------------------------------------------------------------------- install
# ensure_packages, package_installed and apt_plan_installs come from lib.sh.
source "$ROOT/scripts/lib.sh"
need=()
for p in linux-image-amd64 busybox-static kmod gcc libc6-dev jq; do
	package_installed "$p" || need+=("$p")
done
if ((${#need[@]})); then
	((install)) || die "missing packages: ${need[*]} (run without --no-install)"
	log "installing ${need[*]} (the kernel's initramfs makes this take a minute or two)"
	ensure_packages "${need[@]}"
fi

# QEMU without installing it. Debian 12's qemu-system-x86 conflicts with the qemu-utils
# 10.0 from backports these hosts have (apt would remove it), so the packages apt would
# install are downloaded and unpacked into .cache/qemu/root instead, and a wrapper named
# qemu-system-x86_64 (what vng runs from PATH) points the binary at its libraries,
# modules and firmware there. A QEMU already on PATH is used as it is.
provide_qemu() {
	local root="$QEMU_CACHE/root" bin="$QEMU_CACHE/bin" plan pkgs=() deb libpath moddir
	if command -v qemu-system-x86_64 >/dev/null; then
		log "using $(command -v qemu-system-x86_64) ($(qemu-system-x86_64 --version | head -n1))"
		return 0
	fi
	if "$bin/qemu-system-x86_64" --version >/dev/null 2>&1; then
		export PATH="$bin:$PATH"
		log "using ${bin#"$ROOT"/}/qemu-system-x86_64 (unpacked earlier, not installed)"
		return 0
	fi
	((install)) || die "no qemu-system-x86_64 on PATH and none unpacked in ${QEMU_CACHE#"$ROOT"/} (run without --no-install)"
	log "downloading qemu-system-x86 and the libraries it needs into ${QEMU_CACHE#"$ROOT"/} (unpacked there, not installed)"
	apt-get update -qq
	# The packages an install would add or upgrade are exactly what the binary needs
	# beyond what the host has.
	plan="$(LC_ALL=C apt-get install -s -y --no-install-recommends qemu-system-x86)"
	mapfile -t pkgs < <(apt_plan_installs <<<"$plan")
	((${#pkgs[@]})) || die "apt plans no packages for qemu-system-x86"
	rm -rf "$QEMU_CACHE/debs" "$root" "$bin"
	mkdir -p "$QEMU_CACHE/debs" "$root" "$bin"
	# As root, apt's download sandbox user (_apt) cannot write here; nothing is installed.
	(cd "$QEMU_CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root "${pkgs[@]}" >/dev/null)
	for deb in "$QEMU_CACHE"/debs/*.deb; do
		dpkg -x "$deb" "$root"
	done
	[[ -x "$root/usr/bin/qemu-system-x86_64" ]] || die "the qemu-system-x86 package has no usr/bin/qemu-system-x86_64"
	# Every directory of the unpacked tree that holds shared libraries.
	libpath="$(find "$root" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)"
	# Debian's QEMU loads its TCG accelerator (all we have without KVM) as a module from a
	# compiled-in directory, and looks for firmware in /usr/share/qemu, /usr/share/seabios
	# and /usr/lib/ipxe/qemu: point both at the unpacked tree.
	moddir="$(find "$root/usr/lib" -name 'accel-tcg-*.so' -printf '%h' -quit)"
	[[ -n "$moddir" ]] || die "no accel-tcg module in the unpacked QEMU"
	cat >"$bin/qemu-system-x86_64.tmp" <<-WRAPPER
		#!/bin/sh
		# Written by scripts/test-cgroup-v2.sh: Debian's QEMU unpacked in $root, not installed.
		export LD_LIBRARY_PATH="$libpath\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
		export QEMU_MODULE_DIR="$moddir"
		exec "$root/usr/bin/qemu-system-x86_64" -L "$root/usr/share/qemu" -L "$root/usr/share/seabios" -L "$root/usr/lib/ipxe/qemu" "\$@"
	WRAPPER
	chmod 0755 "$bin/qemu-system-x86_64.tmp"
	mv "$bin/qemu-system-x86_64.tmp" "$bin/qemu-system-x86_64"
	"$bin/qemu-system-x86_64" --version >/dev/null || die "the unpacked QEMU does not run: see above"
	export PATH="$bin:$PATH"
	log "using ${bin#"$ROOT"/}/qemu-system-x86_64 ($(qemu-system-x86_64 --version | head -n1))"
}
provide_qemu

if [[ ! -x "$VENV/bin/vng" ]] || ! "$VENV/bin/vng" --version >/dev/null 2>&1; then
	((install)) || die "virtme-ng is missing in $VENV (run without --no-install)"
	log "installing virtme-ng $VNG_VERSION into ${VENV#"$ROOT"/}"
	rm -rf "$VENV"
	if ! python3 -m venv "$VENV" 2>/dev/null; then
		# Debian's own python3 needs python3-venv for ensurepip.
		rm -rf "$VENV"
		ensure_packages python3-venv
		python3 -m venv "$VENV"
	fi
	"$VENV/bin/pip" install -q --disable-pip-version-check "virtme-ng==$VNG_VERSION"
fi
# vng runs virtme-run from PATH.
export PATH="$VENV/bin:$PATH"

kernel="${ISOLETTE_V2_KERNEL:-}"
if [[ -z "$kernel" ]]; then
	# The kernel linux-image-amd64 points at ("linux-image-6.1.0-56-amd64 (= 6.1.192-2)").
	kver="$(dpkg-query -W -f '${Depends}' linux-image-amd64 2>/dev/null | awk '{ sub(/^linux-image-/, "", $1); print $1 }')"
	[[ -n "$kver" && -r "/boot/vmlinuz-$kver" && -d "/lib/modules/$kver" ]] && kernel="/boot/vmlinuz-$kver"
fi
if [[ -z "$kernel" ]]; then
	while read -r k; do
		[[ -d "/lib/modules/${k#/boot/vmlinuz-}" ]] && kernel="$k"
	done < <(printf "%s\n" /boot/vmlinuz-* | grep -v "\*" | sort -V)
fi
[[ -n "$kernel" && -r "$kernel" ]] || die "no kernel found in /boot (with modules in /lib/modules); set ISOLETTE_V2_KERNEL"
phase_end install

if ((boot_check)); then
	# The same VM as the tests get (kernel, QEMU, vng, shared run dir), running only a
	# report of its kernel and cgroups: checks the set-up without building anything.
	rm -rf "$RUN_DIR"
	mkdir -p "$RUN_DIR"
	cat >"$RUN_DIR/boot-check.sh" <<'GUEST'
#!/bin/sh
echo "== guest: kernel $(uname -r), /sys/fs/cgroup: $(stat -fc %T /sys/fs/cgroup), uptime $(cut -d' ' -f1 /proc/uptime) s"
echo "   controllers: $(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)"
echo "   /proc/self/cgroup: $(cat /proc/self/cgroup)"
stat -fc %T /sys/fs/cgroup >"$1/status"
GUEST
	chmod 0755 "$RUN_DIR/boot-check.sh"
	log "--boot-check: booting $kernel in QEMU (no KVM, $CPUS cpus, $MEMORY; timeout ${TIMEOUT}s), no tests"
	vm_rc=0
	# As below: timeout takes qemu down with vng; tee keeps the console from overwriting.
	timeout --kill-after=15 "$TIMEOUT" \
		vng --run "$kernel" --disable-kvm --memory "$MEMORY" --cpus "$CPUS" \
		--rwdir "$RUN_DIR" -- "$RUN_DIR/boot-check.sh" "$RUN_DIR" \
		</dev/null 2>&1 | tee "$RUN_DIR/vm.log" || vm_rc=${PIPESTATUS[0]}
	phase_end vm
	fstype="$(cat "$RUN_DIR/status" 2>/dev/null || true)"
	log "phases: install ${took[install]}s, VM ${took[vm]}s"
	[[ -n "$fstype" ]] || die "the VM gave no result (vng exit $vm_rc): boot failure or crash, see above" 3
	[[ "$fstype" == cgroup2fs ]] || die "the guest's /sys/fs/cgroup is $fstype, not cgroup v2" 4
	log "boot check passed: the VM boots and is on cgroup v2"
	exit 0
fi

# --------------------------------------------------------------------- build
# Test images (busybox only); cheap when they are current.
scripts/build-test-images.sh >/dev/null

if [[ -z "$cargo_json" ]]; then
	log "building the test binaries (cargo test --features cli --no-run)"
	cargo_json="$(mktemp)"
	trap 'rm -f "$cargo_json"' EXIT
	cargo test --features cli --no-run --message-format=json >"$cargo_json"
fi
[[ -r "$cargo_json" ]] || die "cannot read $cargo_json"

rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR/bin"
bins=()
for t in $TESTS; do
	exe="$(jq -r --arg t "$t" 'select(.reason == "compiler-artifact" and .target.name == $t
		and (.target.kind | index("test")) and .executable != null) | .executable' "$cargo_json" | tail -n1)"
	[[ -n "$exe" && -x "$exe" ]] || die "no test binary for '$t' in the cargo output"
	# A private copy, so a rebuild on the host during the run cannot swap it.
	cp "$exe" "$RUN_DIR/bin/$t"
	bins+=("$RUN_DIR/bin/$t")
done
# One cleanup test runs the CLI through its compile-time path (CARGO_BIN_EXE_isolette),
# which the guest sees at the same place.
[[ -x target/debug/isolette ]] || die "target/debug/isolette is missing (build with --features cli)"
phase_end build

# ------------------------------------------------------------------ in the VM
cat >"$RUN_DIR/guest.sh" <<'GUEST'
#!/bin/bash
# Runs inside the VM, as root. $1 = shared run dir, $2 = image cache, rest = test binaries.
set -uo pipefail
run_dir="$1" images="$2"
shift 2
# Knobs from the host (the guest does not inherit its environment).
# shellcheck disable=SC1091
source "$run_dir/env"
result() { echo "$1" >"$run_dir/status"; echo "ISOLETTE-V2-RESULT: $1"; exit "$1"; }
echo "== guest: $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { print int($2 / 1024) " MiB" }' /proc/meminfo), uid $(id -u)"
cut -d' ' -f1 /proc/uptime >"$run_dir/boot_seconds"
echo "   booted in $(cat "$run_dir/boot_seconds") s"
fstype="$(stat -fc %T /sys/fs/cgroup)"
echo "   /sys/fs/cgroup: $fstype; controllers: $(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)"
if [[ "$fstype" != cgroup2fs ]]; then
	echo "FATAL: /sys/fs/cgroup is $fstype, not cgroup2fs: this is no cgroup v2 kernel" >&2
	grep cgroup /proc/self/mounts >&2
	result 4
fi
if [[ "${ISOLETTE_V2_SYSTEMD_LIKE:-1}" == 1 ]]; then
	echo "   ISOLETTE_V2_SYSTEMD_LIKE=1: enabling all controllers in /sys/fs/cgroup/cgroup.subtree_control"
	sed 's/[^ ][^ ]*/+&/g' /sys/fs/cgroup/cgroup.controllers >/sys/fs/cgroup/cgroup.subtree_control
fi
echo "   /sys/fs/cgroup/cgroup.subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
# The images live on the host's share (9p; virtiofs where virtiofsd is installed).
# overlayfs accepts 9p as a lower layer on 6.1, but a copy on a tmpfs costs under a
# second (2 MB) and keeps the runs independent of the share's quirks.
mkdir -p /run/isolette-v2
mount -t tmpfs -o mode=0755 isolette-v2 /run/isolette-v2
mkdir -p /run/isolette-v2/images
cp -a "$images/busybox" /run/isolette-v2/images/ || { echo "FATAL: cannot copy the busybox image" >&2; result 1; }
export ISOLETTE_CACHE=/run/isolette-v2/images ISOLETTE_TEST_STRICT=1 RUST_BACKTRACE=1
rc=0
for bin in "$@"; do
	echo
	echo "==================== $(basename "$bin") (cgroup v2, ISOLETTE_TEST_STRICT=1) ===================="
	start=$(date +%s)
	# shellcheck disable=SC2086
	"$bin" --test-threads=1 ${ISOLETTE_V2_TEST_ARGS:-}
	st=$?
	echo "-- $(basename "$bin"): exit $st in $(($(date +%s) - start)) s"
	((st == 0)) || rc=1
done
echo
echo "== cgroups after the tests"
for f in /sys/fs/cgroup/cgroup.subtree_control /sys/fs/cgroup/isolette/cgroup.controllers \
	/sys/fs/cgroup/isolette/cgroup.subtree_control; do
	[[ -e "$f" ]] && echo "   $f: $(cat "$f")"
done
[[ -d /sys/fs/cgroup/isolette ]] && echo "   left under /sys/fs/cgroup/isolette: $(find /sys/fs/cgroup/isolette -mindepth 1 -type d | wc -l)"
if ((rc)); then
	echo "== kernel warnings and OOM messages (first 40 lines)"
	dmesg | grep -E 'WARNING|BUG|Call Trace|oom|Out of memory|allocation failure|cut here' | head -n 40
fi
result "$rc"
GUEST
chmod 0755 "$RUN_DIR/guest.sh"
{
	printf 'ISOLETTE_V2_SYSTEMD_LIKE=%q\n' "${ISOLETTE_V2_SYSTEMD_LIKE:-1}"
	printf 'ISOLETTE_V2_TEST_ARGS=%q\n' "${ISOLETTE_V2_TEST_ARGS:-}"
} >"$RUN_DIR/env"

log "booting $kernel in QEMU (no KVM, $CPUS cpus, $MEMORY; timeout ${TIMEOUT}s)"
echo "==================== isolette cgroup v2 tests in a VM: $(basename "$kernel") ===================="
vm_rc=0
# timeout signals its whole process group, so qemu goes along with vng. The pipe through
# tee matters: the guest's console output is written through a fresh open of the host's
# stdout, which, when that is a file, would overwrite what this script wrote before.
timeout --kill-after=15 "$TIMEOUT" \
	vng --run "$kernel" --disable-kvm --memory "$MEMORY" --cpus "$CPUS" \
	--rwdir "$RUN_DIR" -- \
	"$RUN_DIR/guest.sh" "$RUN_DIR" "$ROOT/.cache/images" "${bins[@]}" \
	</dev/null 2>&1 | tee "$RUN_DIR/vm.log" || vm_rc=${PIPESTATUS[0]}
phase_end vm

status="$(cat "$RUN_DIR/status" 2>/dev/null || true)"
echo "==================== summary ===================="
log "phases: install ${took[install]}s, build ${took[build]}s, VM ${took[vm]}s (guest boot $(cat "$RUN_DIR/boot_seconds" 2>/dev/null || echo '?')s, the rest tests and shutdown)"
if [[ -z "$status" ]]; then
	((vm_rc == 124 || vm_rc == 137)) && die "the VM timed out after ${TIMEOUT}s" 3
	die "the VM gave no result (vng exit $vm_rc): boot failure or crash, see above" 3
fi
case "$status" in
0) log "cgroup v2: all tests passed ($TESTS)" ;;
4) log "the guest is not on cgroup v2" ;;
*) log "cgroup v2: tests FAILED (status $status)" ;;
esac
exit "$status"
