#!/usr/bin/env bash
# Import speed: the Debian python3 test image (an oci-archive, gzip, one layer) imported into
# a fresh layer store by `isolette image import`, side by side in one run with
# `umoci unpack` of the same image (from its OCI layout, extracted beforehand and not
# timed). Reports seconds and MB/s of unpacked bytes; median of RUNS (default 3).
#   bench/import.sh [RUNS]        (as root; scripts/build-oci-fixtures.sh --python first)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib.sh"
runs="${1:-3}"
archive=.cache/oci-fixtures/debian-python.oci.tar
[[ -f "$archive" ]] || scripts/build-oci-fixtures.sh --python >/dev/null
ensure_packages umoci
cli="$(build_static_cli)"
work="$(mktemp -d /var/tmp/isolette-import-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/layout" && tar -xf "$archive" -C "$work/layout"
ref="$(sed -n 's/.*"org.opencontainers.image.ref.name":"\([^"]*\)".*/\1/p' "$work/layout/index.json")"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
time_of() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }

iso=() umo=()
for _ in $(seq "$runs"); do
	rm -rf "$work/store" "$work/bundle"
	sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
	iso+=("$(time_of "$cli" --store "$work/store" image import "$archive" --name py:bench --quiet)")
	sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
	umo+=("$(time_of umoci unpack --image "$work/layout:$ref" "$work/bundle")")
done
bytes=$(du -sb "$work/bundle/rootfs" | cut -f1)
mb=$(echo "$bytes / 1048576" | bc -l)
t_iso=$(printf '%s\n' "${iso[@]}" | median)
t_umo=$(printf '%s\n' "${umo[@]}" | median)
printf 'image: %s (%s compressed, %.0f MB unpacked), median of %s runs\n' "$archive" "$(du -h "$archive" | cut -f1)" "$mb" "$runs"
printf '%-44s %6.2f s  %6.1f MB/s\n' "isolette image import (oci-archive, verified)" "$t_iso" "$(echo "$mb / $t_iso" | bc -l)"
printf '%-44s %6.2f s  %6.1f MB/s\n' "umoci unpack (OCI layout, already extracted)" "$t_umo" "$(echo "$mb / $t_umo" | bc -l)"
