#!/usr/bin/env bash
# Build speed, side by side in one run: the same 7-step Dockerfile (a static busybox from
# scratch, a RUN, ENV, WORKDIR, 20 small files, a RUN that reads them) built by
# `isolette build`, Docker's classic builder, BuildKit (both from Debian's docker.io) and
# buildah, all with the network off. Three cases, median of RUNS (default 5) each:
#   cold        every step runs (--no-cache; isolette and buildah from an empty store)
#   no-op       a rebuild of the same context
#   one file    a rebuild after one of the 20 files changed
# and isolette's no-op rebuild of a 10,000-file, 100 MB context. Docker's daemon runs only
# for this script, with its own data root, no bridge and no iptables, and is stopped after;
# what the script installs stays (Debian packages), what it makes goes.
#   bench/build.sh [RUNS]        (as root)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib.sh"
runs="${1:-5}"
ensure_packages busybox-static docker.io buildah runc bc python3-venv
cli="$(build_static_cli)"
# Debian's client, whatever else is on PATH (a newer one wants buildx for BuildKit).
docker=/usr/bin/docker
work="$(mktemp -d /var/tmp/isolette-build-bench.XXXXXX)"
dockerd_pid=""
forward="$(cat /proc/sys/net/ipv4/ip_forward)"
cleanup() {
	if [[ -n "$dockerd_pid" ]]; then
		kill "$dockerd_pid" 2>/dev/null || true
		wait "$dockerd_pid" 2>/dev/null || true
	fi
	echo "$forward" >/proc/sys/net/ipv4/ip_forward
	buildah --root "$work/buildah" --runroot "$work/buildah-run" rm --all >/dev/null 2>&1 || true
	umount -R "$work/buildah" 2>/dev/null || true
	umount -R "$work/docker" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# The context.
ctx="$work/ctx"
mkdir -p "$ctx/files"
cp /bin/busybox "$ctx/busybox"
for i in $(seq -w 1 20); do echo "file $i" >"$ctx/files/f$i.txt"; done
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV APP=/app
WORKDIR /app
COPY files/ /app/files/
RUN ["/bin/sh", "-c", "cat /app/files/* | wc -c > /app/count"]
EOF

# Docker's daemon, for this script only.
mkdir -p "$work/docker" "$work/docker-exec"
sock="unix://$work/docker.sock"
dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" --host "$sock" --pidfile "$work/docker.pid" \
	--iptables=false --ip-forward=false --bridge=none >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 100); do "$docker" -H "$sock" info >/dev/null 2>&1 && break; sleep 0.1; done
"$docker" -H "$sock" info >/dev/null

median() { sort -n | awk '{ a[NR] = $1 } END { printf "%.0f", a[int((NR + 1) / 2)] }'; }
ms_of() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@" >&2 || true; exit 1; }; e=$(date +%s%N); echo $(((e - s) / 1000000)); }

iso() { "$cli" --store "$work/isolette" build --network none -t bench:1 "$@" "$ctx"; }
classic() { DOCKER_BUILDKIT=0 "$docker" -H "$sock" build --network none -q -t bench:classic "$@" "$ctx"; }
buildkit() { DOCKER_BUILDKIT=1 "$docker" -H "$sock" build --network none -q -t bench:kit "$@" "$ctx"; }
bah() {
	buildah --root "$work/buildah" --runroot "$work/buildah-run" --storage-driver overlay bud --runtime runc \
		--layers --network none -q -t bench:bah "$@" "$ctx"
}

declare -A samples
tools=(iso classic buildkit bah)
quiet() { "$@" >"$work/out.log" 2>&1 || { echo "failed: $*" >&2; cat "$work/out.log" >&2; exit 1; }; }
for tool in "${tools[@]}"; do quiet "$tool"; done # each has its cache
sleep 2
# The tools take turns within each round, so that what else the machine does meets them alike.
for i in $(seq "$runs"); do
	for tool in "${tools[@]}"; do samples["$tool/cold"]+=" $(ms_of "$tool" --no-cache)"; done
	for tool in "${tools[@]}"; do quiet "$tool"; done
	for tool in "${tools[@]}"; do samples["$tool/noop"]+=" $(ms_of "$tool")"; done
	echo "change $i $RANDOM" >>"$ctx/files/f07.txt"
	for tool in "${tools[@]}"; do samples["$tool/file"]+=" $(ms_of "$tool")"; done
done
declare -A results
for key in "${!samples[@]}"; do results["$key"]="$(tr ' ' '\n' <<<"${samples[$key]}" | grep . | median)"; done

# isolette's no-op rebuild of a 10,000-file, 100 MB context.
big="$work/big"
mkdir -p "$big/tree"
cp /bin/busybox "$big/busybox"
for d in $(seq 0 99); do
	mkdir "$big/tree/d$d"
	for f in $(seq 0 99); do head -c 10240 /dev/urandom >"$big/tree/d$d/f$f"; done
done
printf 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY tree/ /tree/\n' >"$big/Dockerfile"
"$cli" --store "$work/isolette" build --network none -t big:1 "$big" >/dev/null 2>&1
t=()
for _ in $(seq "$runs"); do t+=("$(ms_of "$cli" --store "$work/isolette" build --network none -t big:1 "$big")"); done
big_noop="$(printf '%s\n' "${t[@]}" | median)"

out="$ROOT/bench/results/build.txt"
{
	echo "bench/build.sh on $(uname -n): $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r), $(date -u +%F)"
	echo "median ms of $runs runs; the network off; docker $("$docker" -H "$sock" version -f '{{.Server.Version}}'), $(buildah --version)"
	printf '%-22s %10s %10s %10s %10s\n' case isolette classic BuildKit buildah
	for case in cold noop file; do
		label="$case"
		[[ "$case" != noop ]] || label="no-op rebuild"
		[[ "$case" != file ]] || label="one file changed"
		printf '%-22s %10s %10s %10s %10s\n' "$label" "${results[iso/$case]}" "${results[classic/$case]}" \
			"${results[buildkit/$case]}" "${results[bah/$case]}"
	done
	echo "ratios: no-op $(echo "scale=2; ${results[iso/noop]} / ${results[classic/noop]}" | bc)x classic," \
		"one file $(echo "scale=2; ${results[iso/file]} / ${results[buildkit/file]}" | bc)x BuildKit," \
		"cold $(echo "scale=2; ${results[iso/cold]} / ${results[buildkit/cold]}" | bc)x BuildKit"
	echo "isolette no-op rebuild of a 10,000-file, 100 MB context: $big_noop ms"
} | tee "$out"
{
	printf '{"title": "isolette build vs Docker classic, BuildKit and buildah (%s, %s runs)", "median_ms": {' "$(date -u +%F)" "$runs"
	first=1
	for key in "${!results[@]}"; do
		((first)) || printf ', '
		first=0
		printf '"%s": %s' "$key" "${results[$key]}"
	done
	printf '}, "big_context_noop_ms": %s}\n' "$big_noop"
} >"$ROOT/bench/results/build.json"
venv="$ROOT/.cache/venv-bench"
[[ -x "$venv/bin/python" ]] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib; }
"$venv/bin/python" "$ROOT/bench/plot_build.py" "$ROOT/bench/results/build.json" "$ROOT/bench/results/build.png"
