#!/usr/bin/env bash
# Compose speed, side by side in one run: `up -d` and `down` of examples/compose's two
# services from built images, by `isolette compose` and by Docker Compose (Debian's
# docker-compose over docker.io's daemon). The healthcheck waits are left out: the project
# is the example's with `depends_on` in its short form and no healthchecks, so `up -d`
# returns once both run. The same images on both sides: isolette builds them (from the
# catalog's, in $ISOLETTE_STORE, default .cache/store) and pushes them to a registry on
# loopback, from which Docker pulls them. Median and p90 of RUNS (default 20) each, the
# tools taking turns. Docker's daemon runs only for this script, with its own data root,
# no default bridge and no iptables, and is stopped after.
#   bench/compose.sh [RUNS]        (as root, after scripts/build-language-images.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib.sh"
runs="${1:-20}"
ensure_packages docker.io docker-compose docker-registry python3
cli="$(build_static_cli)"
export ISOLETTE_STORE="${ISOLETTE_STORE:-$ROOT/.cache/store}"
docker=/usr/bin/docker
work="$(mktemp -d /var/tmp/isolette-compose-bench.XXXXXX)"
export ISOLETTE_STATE="$work/state" ISOLETTE_NETWORKS="$work/networks"
dockerd_pid="" registry_pid=""
forward="$(cat /proc/sys/net/ipv4/ip_forward)"
project="$work/project"
cleanup() {
	(cd "$project" 2>/dev/null && "$cli" compose -p visits down -v >/dev/null 2>&1) || true
	if [[ -n "$dockerd_pid" ]]; then
		(cd "$project" && DOCKER_HOST="$sock" docker-compose -p visits -f docker-compose.init.yaml down -v >/dev/null 2>&1) || true
		kill "$dockerd_pid" 2>/dev/null || true
		wait "$dockerd_pid" 2>/dev/null || true
	fi
	[[ -z "$registry_pid" ]] || kill "$registry_pid" 2>/dev/null || true
	echo "$forward" >/proc/sys/net/ipv4/ip_forward
	umount -R "$work/docker" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# The images, built by isolette from the example as it is.
(cd examples/compose && "$cli" compose -p visits up -d --build --wait >/dev/null 2>&1 && "$cli" compose -p visits down -v >/dev/null 2>&1)

# The project: the example's, without the healthcheck waits, on a port of its own.
mkdir -p "$project"
cp -r examples/compose/static "$project/"
cat >"$project/compose.yaml" <<'YAML'
services:
  web:
    image: visits-web
    ports: ["127.0.0.1:18090:8000"]
    environment: {REDIS_HOST: db}
    volumes: ["./static:/srv/static:ro"]
    depends_on: [db]
  db:
    image: visits-db
    volumes: ["data:/data"]
volumes:
  data:
YAML
# Docker's with an init in front of each program (`init: true`), as isolette always has:
# without it, a program that is pid 1 ignores SIGTERM (Python's does) and every `down`
# waits out its 10 s before the kill.
sed 's/^    image: \(.*\)$/    image: \1\n    init: true/' "$project/compose.yaml" >"$project/docker-compose.init.yaml"

# A registry on loopback, and Docker's daemon, for this script only.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
	"$work/registry" "$port" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
mkdir -p "$work/docker" "$work/docker-exec"
sock="unix://$work/docker.sock"
dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" --host "$sock" --pidfile "$work/docker.pid" \
	--iptables=false --bridge=none >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 100); do "$docker" -H "$sock" info >/dev/null 2>&1 && break; sleep 0.1; done
"$docker" -H "$sock" info >/dev/null
for image in visits-web visits-db; do
	"$cli" image push -q "$image" "127.0.0.1:$port/$image:latest" >/dev/null
	"$docker" -H "$sock" pull -q "127.0.0.1:$port/$image:latest" >/dev/null
	"$docker" -H "$sock" tag "127.0.0.1:$port/$image:latest" "$image:latest"
done

ms_of() { local s e; s=$(date +%s%N); "$@" >"$work/out.log" 2>&1 || { echo "failed: $*" >&2; cat "$work/out.log" >&2; exit 1; }; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
iso() { (cd "$project" && "$cli" compose -p visits "$@"); }
dc() { (cd "$project" && DOCKER_HOST="$sock" docker-compose -p visits -f docker-compose.init.yaml "$@"); }
served() { python3 -c 'import sys, urllib.request as u, time
for _ in range(100):
    try: print(u.urlopen("http://127.0.0.1:18090/", timeout=2).read().decode(), end=""); break
    except OSError: time.sleep(0.1)
else: sys.exit(1)'; }
# Each once, untimed, and checked: the project serves on both.
for tool in iso dc; do
	"$tool" up -d >/dev/null 2>&1
	served >/dev/null || { echo "$tool: the project does not serve" >&2; exit 1; }
	"$tool" down >/dev/null 2>&1
done
declare -A samples
for _ in $(seq "$runs"); do
	for tool in iso dc; do
		samples["$tool/up"]+=" $(ms_of "$tool" up -d)"
		samples["$tool/down"]+=" $(ms_of "$tool" down)"
	done
done
stat() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ a[NR] = $1 } END { printf "%d / %d", a[int((NR + 1) / 2)], a[int((NR * 9 + 9) / 10)] }'; }
ratio() { python3 -c 'import sys, statistics as s
a, b = ([float(x) for x in v.split()] for v in sys.argv[1:])
print(f"{s.median(a) / s.median(b):.2f}x")' "$1" "$2"; }

out="$ROOT/bench/results/compose.txt"
{
	echo "bench/compose.sh on $(uname -n): $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r), $(date -u +%F)"
	echo "examples/compose's two services from built images, no healthcheck waits, Docker's with init: true; ms, median / p90 of $runs runs each"
	echo "docker-compose $(docker-compose version --short), docker $("$docker" -H "$sock" version -f '{{.Server.Version}}')"
	printf '| %-6s | %-18s | %-18s | %-8s |\n' verb "isolette compose" "Docker Compose" ratio
	printf '| %-6s | %-18s | %-18s | %-8s |\n' --- ---: ---: ---:
	for verb in up down; do
		printf '| %-6s | %-18s | %-18s | %-8s |\n' "$verb" "$(stat "${samples[iso/$verb]}")" \
			"$(stat "${samples[dc/$verb]}")" "$(ratio "${samples[iso/$verb]}" "${samples[dc/$verb]}")"
	done
} | tee "$out"
