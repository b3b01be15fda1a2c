#!/usr/bin/env bash
# Builds the judge's language images (examples/languages/) with `isolette build`.
#
#   scripts/build-language-images.sh [--expect-cached]
#
# First the Debian 12 base, `isolette/debian:12`: debootstrap's minbase, made once and kept
# as .cache/languages/rootfs.tar, then added whole by examples/languages/base/Dockerfile,
# as Debian's own images are made. Then every language directory that has a Dockerfile, in
# the order their FROM lines ask; their RUN steps install the toolchains from Debian's
# registry over the sandbox's outbound network. Each image is tagged with the `image` of
# the directory's language.json. A second run finds every step in the build cache;
# --expect-cached fails when a step ran (CI runs it so, after the first build).
#
# Images go to the store at $ISOLETTE_STORE (default /var/lib/isolette for root). The CLI
# is $ISOLETTE_CLI (default: the static CLI, built here). Needs root (builds do).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib.sh"
run_as_root "$ROOT/scripts/build-language-images.sh" "$@"
log() { echo "build-language-images: $*" >&2; }

expect_cached=0
for arg in "$@"; do
	case "$arg" in
	--expect-cached) expect_cached=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
		exit 0
		;;
	*)
		log "unknown argument: $arg (try --help)"
		exit 2
		;;
	esac
done

SUITE=bookworm
CACHE="$ROOT/.cache/languages"
LANGUAGES="$ROOT/examples/languages"
BASE=isolette/debian:12
cli="${ISOLETTE_CLI:-}"
[[ -n "$cli" ]] || cli="$(build_static_cli)"
mkdir -p "$CACHE"

# One run at a time (the rootfs is made in place).
exec 9>"$CACHE/.lock"
flock 9

# The base's root filesystem: debootstrap's minbase with apt set as images want it (no
# recommends, dpkg without fsync: a layer is written whole or not at all anyway), the
# sandbox user, no apt lists and no device nodes (the sandbox makes its own /dev).
make_rootfs() {
	[[ -s "$CACHE/rootfs.tar" ]] && return 0
	ensure_packages debootstrap
	local tmp start=$SECONDS mirror
	mirror="$(debian_mirror "$SUITE")"
	tmp="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
	# shellcheck disable=SC2064 # the path is fixed now
	trap "umount -R '$tmp/root/proc' '$tmp/root/sys' 2>/dev/null; rm -rf --one-file-system '$tmp' '$CACHE/rootfs.tar.tmp'" EXIT
	log "debootstrap $SUITE (minbase) from $mirror"
	debootstrap --variant=minbase "$SUITE" "$tmp/root" "$mirror" >&2
	umount -R "$tmp/root/proc" "$tmp/root/sys" 2>/dev/null || true
	printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$tmp/root/etc/apt/apt.conf.d/90isolette"
	echo force-unsafe-io >"$tmp/root/etc/dpkg/dpkg.cfg.d/90isolette"
	grep -q '^sandbox:' "$tmp/root/etc/passwd" ||
		echo 'sandbox:x:60000:60000:isolette sandbox:/tmp:/usr/sbin/nologin' >>"$tmp/root/etc/passwd"
	grep -q '^sandbox:' "$tmp/root/etc/group" || echo 'sandbox:x:60000:' >>"$tmp/root/etc/group"
	rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/cache/apt/"*.bin "$tmp/root/var/lib/apt/lists/"*_*
	find "$tmp/root/dev" -mindepth 1 -delete
	tar --numeric-owner --xattrs -C "$tmp/root" -cf "$CACHE/rootfs.tar.tmp" .
	mv "$CACHE/rootfs.tar.tmp" "$CACHE/rootfs.tar"
	rm -rf --one-file-system "$tmp"
	trap - EXIT
	log "rootfs made in $((SECONDS - start)) s ($(du -h "$CACHE/rootfs.tar" | cut -f1))"
}

ran_steps=0
# build TAG CONTEXT [DOCKERFILE]: one image; counts the steps that were not cached.
build() {
	local tag="$1" context="$2" dockerfile="${3:-}" start=$SECONDS report ran
	local args=(build --json -t "$tag")
	[[ -z "$dockerfile" ]] || args+=(-f "$dockerfile")
	report="$(mktemp)"
	if ! "$cli" "${args[@]}" "$context" >"$report"; then
		tail -n 20 "$report" >&2
		rm -f "$report"
		log "building $tag failed"
		exit 1
	fi
	# Steps that ran: not cached, with a reason (FROM, ENV and the like have none).
	ran="$(python3 -c 'import json, sys
print(sum(1 for line in open(sys.argv[1]) if (e := json.loads(line)).get("step") and not e["cached"] and e["reason"]))' "$report")"
	rm -f "$report"
	ran_steps=$((ran_steps + ran))
	log "$tag: $((SECONDS - start)) s, $ran step(s) run"
}

# The image a language directory's language.json names.
image_of() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["image"])' "$1/language.json"
}

make_rootfs
build "$BASE" "$CACHE" "$LANGUAGES/base/Dockerfile"

# The language images, each after the image its FROM names (the base or another one here).
declare -A built=(["$BASE"]=1)
pending=()
for dir in "$LANGUAGES"/*/; do
	dir="${dir%/}"
	[[ -f "$dir/Dockerfile" && "$(basename "$dir")" != base ]] && pending+=("$dir")
done
while ((${#pending[@]})); do
	left=()
	for dir in "${pending[@]}"; do
		from="$(awk 'toupper($1) == "FROM" { print $2; exit }' "$dir/Dockerfile")"
		if [[ -n "${built[$from]:-}" ]]; then
			tag="$(image_of "$dir")"
			build "$tag" "$dir"
			built["$tag"]=1
		else
			left+=("$dir")
		fi
	done
	if ((${#left[@]} == ${#pending[@]})); then
		log "no image can be built next: ${left[*]} name a FROM that is neither $BASE nor a catalog image"
		exit 1
	fi
	pending=("${left[@]}")
done
if ((expect_cached && ran_steps)); then
	log "$ran_steps step(s) ran, though every one should have been in the build cache"
	exit 1
fi
log "done: ${#built[@]} images, $ran_steps step(s) run"
