#!/usr/bin/env bash
# The Compose example end to end, as a user runs it (root; the catalog's images in
# $ISOLETTE_STORE, which scripts/build-language-images.sh makes): `up -d --wait` builds
# `db` (Debian's redis-server) and `web`, two GETs count up, `down` and `up` keep the
# count in the named volume, `down -v` loses it, and nothing of the project is left: no
# sandbox, network, mount, process or cgroup.
#   examples/compose/test.sh [ISOLETTE_CLI]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cli="${1:-isolette}"
work="$(mktemp -d "${TMPDIR:-/tmp}/isolette-compose-test.XXXXXX")"
export ISOLETTE_STATE="$work/state" ISOLETTE_NETWORKS="$work/networks"
mark="compose-example-$$"
export ISOLETTE_TEST_MARK="$mark"
# A free loopback port for web (the file's default is 18080): `${WEB_PORT:-18080}`.
WEB_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export WEB_PORT
compose() { (cd "$here" && "$cli" compose "$@"); }
cleanup() {
	compose down -v --remove-orphans >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "compose example: $*" >&2; compose ps -a >&2 || true; compose logs --tail 20 >&2 || true; exit 1; }
get() { python3 -c 'import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=5).read().decode(), end="")' "http://127.0.0.1:$WEB_PORT$1"; }
expect() { local got; got="$(get "$1")" || fail "GET $1 failed"; [[ "$got" == "$2" ]] || fail "GET $1: got '$got', want '$2'"; }

compose config --services | tr '\n' ' ' | grep -qx 'db web ' || fail "config --services is not 'db web'"
compose up -d --wait --build
compose ps --json | python3 -c '
import json, sys
rows = {r["name"]: r for r in json.load(sys.stdin)}
assert set(rows) == {"visits-db-1", "visits-web-1"}, rows
assert rows["visits-db-1"]["status"] == "running (healthy)", rows
assert rows["visits-web-1"]["ports"][0].startswith("127.0.0.1:"), rows
' || fail "ps does not show the two services running and healthy"
expect / "visits 1"
expect / "visits 2"
expect /static/hello.txt "hello from ./static"
# Its first line, once the supervisor has copied it into the log (it may lag the request).
for _ in $(seq 100); do
	logs="$(compose logs web)"
	grep -qx 'web-1  | serving on :8000' <<<"$logs" && break
	sleep 0.1
done
grep -qx 'web-1  | serving on :8000' <<<"$logs" || fail "web's log lacks its first line: $logs"
compose down
compose up -d --wait
expect / "visits 3"
compose down -v
compose up -d --wait
expect / "visits 1"
compose down -v

# Nothing of the project is left.
# Each listing fails the script if it cannot be made (set -e), rather than look empty.
state="$(ls -A "$ISOLETTE_STATE")" networks="$(ls -A "$ISOLETTE_NETWORKS")" volumes="$("$cli" volume ls)"
[[ -z "$(grep -vx lock <<<"$state" || true)" ]] || fail "sandboxes left: $state"
[[ -z "$(grep -vx lock <<<"$networks" || true)" ]] || fail "networks left: $networks"
! grep -q "$work" /proc/self/mountinfo || fail "mounts left under $work"
grep -q '^NAME' <<<"$volumes" || fail "volume ls printed no table: $volumes"
! grep -q visits_data <<<"$volumes" || fail "the named volume outlived down -v"
for env in $(grep -lzx "ISOLETTE_TEST_MARK=$mark" /proc/[0-9]*/environ 2>/dev/null || true); do
	pid="${env#/proc/}" pid="${pid%/environ}"
	state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)"
	[[ "$state" == Z || "$state" == gone ]] || fail "process $pid of the project is left"
done
echo "compose example: ok"
