#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: installs what isolette needs, builds the CLI
# and the test images, and runs real programs in sandboxes. Needs root (sandboxes with
# full isolation, apt): as another user it runs itself again through sudo.
#
#   scripts/setup.sh            everything, ending with a demo run
#   scripts/setup.sh --deps     only packages, build and images (used by scripts/test.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "setup: $*" >&2; }

source "$ROOT/scripts/lib.sh"
run_as_root "$ROOT/scripts/setup.sh" "$@"
# Before any package: without Rust nothing else is of use.
command -v cargo >/dev/null || { log "Rust is missing: install stable Rust with rustup (https://rustup.rs) first"; exit 1; }

# System packages: a C compiler for the test payload, busybox and debootstrap for the
# test images, bubblewrap for the benchmark's side-by-side figures, and for the registry
# tests a local registry (docker-registry), htpasswd (apache2-utils) and openssl; slirp4netns
# for outbound networks and published ports, iproute2 for named networks and
# nftables for egress rules; musl-gcc (musl-tools) for the static CLI.
ensure_packages gcc libc6-dev musl-tools busybox-static debootstrap bubblewrap ca-certificates \
	docker-registry apache2-utils openssl slirp4netns iproute2 nftables

log "building the isolette CLI (release: about 2.5 minutes the first time, on 2 cores)"
cli="$(build_static_cli)"
log "building the test images and the OCI fixtures (debootstrap of a Debian rootfs: 1-2 minutes the first time)"
scripts/build-test-images.sh --python >/dev/null
scripts/build-oci-fixtures.sh --python >/dev/null

[[ "${1:-}" == --deps ]] && exit 0

echo "== the CLI: $cli (a static binary; copy it anywhere)"
echo "== isolette check"
$cli check
echo "== a Python program in a sandbox (debian-python image), outcome as JSON"
$cli run --image .cache/images/debian-python --wall-time 5s --json -- \
	python3 -c 'import os, socket; print(6 * 7, os.getuid(), socket.gethostname())'
echo "== a docker/OCI image imported once into the layer store, then run by name"
$cli image import .cache/oci-fixtures/debian-python.oci.tar --name debian-python:12 --quiet
$cli image ls
$cli run --image debian-python:12 --json -- python3 -c 'import sys; print(sys.version.split()[0])'
echo "== a program that runs too long is stopped at the wall-time limit"
$cli run --image .cache/images/busybox --wall-time 500ms --json -- sleep 10
