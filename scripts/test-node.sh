#!/usr/bin/env bash
# The Node package's tests (called by scripts/test.sh, as root, after the test images are
# built): `npm install` in bindings-node (its dev tools from the npm registry; the addon
# built from source by its install script), the generated native.d.ts checked against
# the committed one, the node:test suite, a TypeScript file type-checked with
# `tsc --strict`, then `npm install ./bindings-node` in a fresh directory, and the
# `npm pack` tarball installed in another, with no Rust in reach, each running a program.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/bindings-node"
log() { echo "test-node: $*" >&2; }
source "$ROOT/scripts/lib.sh"
command -v node >/dev/null && command -v npm >/dev/null || ensure_packages nodejs npm

log "npm install (dev tools; the addon built from source, release)"
rm -f isolette.node
npm install --no-audit --no-fund --loglevel=error

log "native.d.ts is what napi-rs generates from the source"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
npx napi build --release --platform --no-js --dts native.d.ts --output-dir "$out" >/dev/null
diff -u native.d.ts "$out/native.d.ts" || { log "native.d.ts is stale: copy $out/native.d.ts over it"; exit 1; }

log "node --test (strict: a skip is a failure)"
ISOLETTE_TEST_STRICT="${ISOLETTE_TEST_STRICT:-1}" node --test test/*.test.js

log "tsc --noEmit --strict on a TypeScript file using the package"
npx tsc -p test/tsconfig.json

image="$ROOT/.cache/images/busybox"
smoke="const i=require('isolette'); i.run(i.Image.open('$image'), ['/bin/echo','hi']).then(o => console.log(o.stdout.toString().trim()))"

log "npm install ./bindings-node in a fresh directory"
fresh="$out/from-source"
mkdir -p "$fresh" && cd "$fresh" && npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error "$ROOT/bindings-node"
[[ "$(node -e "$smoke")" == hi ]] || { log "the installed package did not print hi"; exit 1; }

log "npm pack, installed in a fresh directory without Rust"
cd "$ROOT/bindings-node"
tarball="$(npm pack --silent --pack-destination "$out")"
packed="$out/from-tarball"
mkdir -p "$packed" && cd "$packed" && npm init -y >/dev/null
env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$HOME" npm install --no-audit --no-fund --loglevel=error "$out/$tarball"
[[ "$(env -i PATH=/usr/local/bin:/usr/bin:/bin node -e "$smoke")" == hi ]] || { log "the packed package did not print hi"; exit 1; }
log "both print hi ($tarball)"
