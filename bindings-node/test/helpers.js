'use strict'
// Test images (scripts/build-test-images.sh) and leftover checks. Without root or an
// image a test skips with the reason; under ISOLETTE_TEST_STRICT=1 (CI) that fails.
const fs = require('node:fs')
const path = require('node:path')
const isolette = require('..')

const IMAGES = process.env.ISOLETTE_CACHE || path.join(__dirname, '..', '..', '.cache', 'images')
const PROBE = '/usr/local/bin/isolette-probe'
const STRICT = process.env.ISOLETTE_TEST_STRICT === '1'

/** The image `name`, or null after skipping `t` (a failure under strict). */
function image (t, name) {
  let reason = null
  if (process.geteuid() !== 0) reason = 'needs root (CI runs as root)'
  else if (!fs.existsSync(path.join(IMAGES, name, PROBE.slice(1)))) {
    reason = `the ${name} test image is missing; run scripts/build-test-images.sh`
  }
  if (reason === null) return isolette.Image.open(path.join(IMAGES, name))
  if (STRICT) throw new Error(`${reason} (ISOLETTE_TEST_STRICT=1 turns this skip into a failure)`)
  t.skip(reason)
  return null
}

/** Cgroups named for this process. */
function ownCgroups () {
  const found = []
  const prefix = `${process.pid}-`
  for (const base of ['/sys/fs/cgroup/memory/isolette', '/sys/fs/cgroup/pids/isolette', '/sys/fs/cgroup/isolette']) {
    if (!fs.existsSync(base)) continue
    for (const name of fs.readdirSync(base)) if (name.startsWith(prefix)) found.push(path.join(base, name))
  }
  return found
}

/** This process's children. */
function children () {
  const out = []
  for (const tid of fs.readdirSync(`/proc/${process.pid}/task`)) {
    let text = ''
    try {
      text = fs.readFileSync(`/proc/${process.pid}/task/${tid}/children`, 'utf8').trim()
    } catch (e) {
      if (e.code !== 'ENOENT') throw e // a thread that has just ended
    }
    if (text) out.push(...text.split(/\s+/).map(Number))
  }
  return out
}

module.exports = { image, ownCgroups, children, PROBE, IMAGES }
