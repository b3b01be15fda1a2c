#!/usr/bin/env bash
# Build the root filesystems used by isolette's integration tests.
#
#   scripts/build-test-images.sh [--python]
#
# Images are cached under $ROOT/.cache/images (override the directory with
# ISOLETTE_CACHE) and only rebuilt when missing or outdated:
#
#   busybox/        static busybox + applet symlinks, /etc/passwd with root and
#                   sandbox (60000:60000), /usr/local/bin/isolette-probe
#   debian-python/  debootstrap minbase bookworm + python3 + isolette-probe
#                   (only with --python or ISOLETTE_PYTHON_IMAGE=1)
#
# The probe (core/tests/probe/probe.c) is recompiled whenever the source is
# newer than the cached binary, and refreshed in every cached image.
#
# Progress goes to stderr; stdout gets only KEY=PATH lines for the images.
# Other knobs: ISOLETTE_DEBIAN_MIRROR (default: taken from apt's sources).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ISOLETTE_CACHE:-$ROOT/.cache/images}"
PROBE_SRC="$ROOT/core/tests/probe/probe.c"
PROBE_BIN="$CACHE/probe/isolette-probe"
BUSYBOX_IMG="$CACHE/busybox"
PYTHON_IMG="$CACHE/debian-python"
SUITE=bookworm
# Bump when the busybox image layout changes so cached images get rebuilt.
BUSYBOX_LAYOUT=1

want_python="${ISOLETTE_PYTHON_IMAGE:-0}"
[[ "$want_python" == 1 || "$want_python" == true || "$want_python" == yes ]] && want_python=1 || want_python=0
for arg in "$@"; do
	case "$arg" in
	--python) want_python=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
		exit 0
		;;
	*)
		echo "build-test-images: unknown argument: $arg (try --help)" >&2
		exit 2
		;;
	esac
done

log() { echo "build-test-images: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root to run: $*"
	fi
}

# ------------------------------------------------------------------ cleanup
# Temporary build directories live inside $CACHE (same filesystem, so the
# final rename is atomic) and are removed on exit, also on failure.
TEMPS=()

umount_under() {
	# Unmount anything (e.g. debootstrap's proc/sys) below $1, deepest first.
	local dir mnts
	dir="$(realpath -m "$1")"
	mnts="$(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r)" || true
	if [[ -n "$mnts" ]]; then
		while read -r m; do
			as_root umount -l "$m" 2>/dev/null || true
		done <<<"$mnts"
	fi
}

remove_tree() {
	[[ -e "$1" ]] || return 0
	umount_under "$1"
	rm -rf --one-file-system "$1" 2>/dev/null || as_root rm -rf --one-file-system "$1"
}

cleanup() {
	local t
	for t in "${TEMPS[@]}"; do
		remove_tree "$t"
	done
}
trap cleanup EXIT

# Atomically replace $2 with the freshly built directory $1.
swap_into_place() {
	local new="$1" dest="$2" old=""
	if [[ -e "$dest" ]]; then
		old="$(mktemp -u "$CACHE/.old.$(basename "$dest").XXXXXX")"
		mv "$dest" "$old"
	fi
	mv "$new" "$dest"
	[[ -z "$old" ]] || remove_tree "$old"
}

# ----------------------------------------------------------------- packages
# ensure_packages comes from lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# -------------------------------------------------------------------- probe
build_probe() {
	[[ -f "$PROBE_SRC" ]] || die "missing $PROBE_SRC"
	if [[ -x "$PROBE_BIN" && ! "$PROBE_SRC" -nt "$PROBE_BIN" ]]; then
		return 0
	fi
	log "compiling isolette-probe"
	mkdir -p "$(dirname "$PROBE_BIN")"
	local tmp
	tmp="$(mktemp "$PROBE_BIN.tmp.XXXXXX")"
	TEMPS+=("$tmp")
	gcc -O2 -Wall -Wextra -static -o "$tmp" "$PROBE_SRC"
	chmod 0755 "$tmp"
	mv -f "$tmp" "$PROBE_BIN"
}

# Copy the probe into an image root (atomically; no-op when up to date).
install_probe() {
	local dest="$1/usr/local/bin/isolette-probe" r=()
	if cmp -s "$PROBE_BIN" "$dest"; then
		return 0
	fi
	# debootstrap trees are root-owned; escalate only if needed.
	[[ -w "$1/usr/local/bin" || (! -e "$1/usr/local/bin" && -w "$1/usr/local") ]] || r=(as_root)
	"${r[@]}" mkdir -p "$1/usr/local/bin"
	"${r[@]}" cp "$PROBE_BIN" "$dest.tmp"
	"${r[@]}" chmod 0755 "$dest.tmp"
	"${r[@]}" mv -f "$dest.tmp" "$dest"
}

# ------------------------------------------------------------ busybox image
busybox_current() {
	[[ -x "$BUSYBOX_IMG/bin/busybox" ]] &&
		[[ "$(cat "$CACHE/.busybox.stamp" 2>/dev/null)" == "$BUSYBOX_LAYOUT" ]] &&
		cmp -s /bin/busybox "$BUSYBOX_IMG/bin/busybox"
}

build_busybox() {
	if busybox_current; then
		install_probe "$BUSYBOX_IMG"
		return 0
	fi
	log "building busybox image"
	local start=$SECONDS tmp applet
	tmp="$(mktemp -d "$CACHE/.busybox.tmp.XXXXXX")"
	TEMPS+=("$tmp")
	chmod 0755 "$tmp"

	mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,proc,dev,etc,root,work,tmp}
	chmod 1777 "$tmp/tmp"
	chmod 0700 "$tmp/root"
	cp /bin/busybox "$tmp/bin/busybox"
	chmod 0755 "$tmp/bin/busybox"
	while read -r applet; do
		[[ -n "$applet" && "$applet" != bin/busybox ]] || continue
		mkdir -p "$tmp/$(dirname "$applet")"
		ln -sfn /bin/busybox "$tmp/$applet"
	done < <(/bin/busybox --list-full)

	cat >"$tmp/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		sandbox:x:60000:60000:isolette sandbox:/work:/bin/sh
	EOF
	cat >"$tmp/etc/group" <<-'EOF'
		root:x:0:
		sandbox:x:60000:
	EOF
	chmod 0644 "$tmp/etc/passwd" "$tmp/etc/group"
	install_probe "$tmp"

	rm -f "$CACHE/.busybox.stamp"
	swap_into_place "$tmp" "$BUSYBOX_IMG"
	echo "$BUSYBOX_LAYOUT" >"$CACHE/.busybox.stamp"
	log "busybox image built in $((SECONDS - start))s ($(du -sh "$BUSYBOX_IMG" | cut -f1))"
}

# ------------------------------------------------------------ debian-python
# build_debian DIR NAME PACKAGES MUST_HAVE: debootstrap minbase with PACKAGES (comma
# separated), the sandbox user, the probe; skipped when DIR/MUST_HAVE exists.
build_debian() {
	local dir="$1" name="$2" packages="$3" must="$4"
	if [[ -x "$dir/$must" ]]; then
		install_probe "$dir"
		return 0
	fi
	local mirror start=$SECONDS tmp
	mirror="$(debian_mirror "$SUITE")"
	log "building $name image with debootstrap from $mirror (takes a minute or two)"
	tmp="$(mktemp -d "$CACHE/.$name.tmp.XXXXXX")"
	TEMPS+=("$tmp")
	chmod 0755 "$tmp"
	as_root debootstrap --variant=minbase --include="$packages" "$SUITE" "$tmp" "$mirror" >&2
	umount_under "$tmp"

	as_root rm -f "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/cache/apt/archives/partial/*.deb \
		"$tmp"/var/cache/apt/*.bin "$tmp"/var/lib/apt/lists/*_*
	as_root mkdir -p "$tmp/work"
	if ! grep -q '^sandbox:' "$tmp/etc/passwd"; then
		echo 'sandbox:x:60000:60000:isolette sandbox:/work:/usr/sbin/nologin' | as_root tee -a "$tmp/etc/passwd" >/dev/null
	fi
	if ! grep -q '^sandbox:' "$tmp/etc/group"; then
		echo 'sandbox:x:60000:' | as_root tee -a "$tmp/etc/group" >/dev/null
	fi
	[[ -x "$tmp/$must" ]] || die "debootstrap produced no $must"
	install_probe "$tmp"

	swap_into_place "$tmp" "$dir"
	log "$name image built in $((SECONDS - start))s ($(du -sh "$dir" | cut -f1))"
}

build_python() {
	build_debian "$PYTHON_IMG" debian-python python3 usr/bin/python3
}

# --------------------------------------------------------------------- main
pkgs=(busybox-static gcc libc6-dev)
((want_python)) && pkgs+=(debootstrap)
ensure_packages "${pkgs[@]}"

mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
PROBE_BIN="$CACHE/probe/isolette-probe"
BUSYBOX_IMG="$CACHE/busybox"
PYTHON_IMG="$CACHE/debian-python"

# Serialise concurrent runs (e.g. several test binaries building at once).
exec 9>"$CACHE/.lock"
flock 9
# Leftovers of interrupted runs (safe: we hold the lock).
shopt -s nullglob
for stale in "$CACHE"/.*.tmp.* "$CACHE"/.old.* "$CACHE"/probe/*.tmp.*; do
	remove_tree "$stale"
done
shopt -u nullglob

build_probe
build_busybox
if ((want_python)); then
	build_python
elif [[ -x "$PYTHON_IMG/usr/bin/python3" ]]; then
	install_probe "$PYTHON_IMG" # keep an already-built image's probe current
fi

echo "ISOLETTE_TEST_IMAGE_BUSYBOX=$BUSYBOX_IMG"
if [[ -x "$PYTHON_IMG/usr/bin/python3" ]]; then
	echo "ISOLETTE_TEST_IMAGE_PYTHON=$PYTHON_IMG"
elif ! ((want_python)); then
	log "debian-python image not built (pass --python or set ISOLETTE_PYTHON_IMAGE=1)"
fi
