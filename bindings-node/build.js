'use strict'
// The addon, built from source with cargo when it is not here yet (`npm install
// ./bindings-node` on a machine with Rust); a packed tarball (`npm pack`) carries it built.
// `node build.js --force` builds again.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const here = __dirname
const target = path.join(here, 'isolette.node')
if (fs.existsSync(target) && !process.argv.includes('--force')) process.exit(0)
execFileSync('cargo', ['build', '--release', '-p', 'isolette-node'], { cwd: here, stdio: 'inherit' })
const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: here }))
fs.copyFileSync(path.join(meta.target_directory, 'release', 'libisolette_node.so'), target)
