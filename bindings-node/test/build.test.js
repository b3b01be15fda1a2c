'use strict'
// store.build, store.pull and store.push: a Dockerfile built with progress events, the
// cache on a rebuild, a failing step's error, an AbortSignal, and the image pushed to a
// real registry on loopback (Debian's docker-registry) and pulled into another store.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { spawn, execFileSync } = require('node:child_process')
const isolette = require('..')

const FIXTURES = path.join(__dirname, '..', '..', '.cache', 'oci-fixtures')
const STRICT = process.env.ISOLETTE_TEST_STRICT === '1'

function skip (t, reason) {
  if (STRICT) throw new Error(`${reason} (ISOLETTE_TEST_STRICT=1 turns this skip into a failure)`)
  t.skip(reason)
}

/** A store holding the two-layer test image as `base`, or null after skipping. */
async function storeWithBase (t) {
  if (process.geteuid() !== 0) return skip(t, 'needs root (CI runs as root)')
  const base = path.join(FIXTURES, 'two-layer')
  if (!fs.existsSync(path.join(base, 'index.json'))) return skip(t, 'the OCI fixtures are missing; run scripts/build-oci-fixtures.sh')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-build-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const store = new isolette.Store(path.join(dir, 'store'))
  await store.import(base, { name: 'base' })
  return { dir, store }
}

function context (dir, dockerfile) {
  const ctx = fs.mkdtempSync(path.join(dir, 'ctx-'))
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), dockerfile)
  fs.writeFileSync(path.join(ctx, 'hello.txt'), 'hello\n')
  return ctx
}

test('a build, its events and its cache', async (t) => {
  const s = await storeWithBase(t)
  if (!s) return
  const ctx = context(s.dir, 'FROM base\nUSER root\nCOPY hello.txt /hello.txt\nRUN echo ran > /ran && echo out\n')
  const events = []
  const summary = await s.store.build(ctx, { tags: ['node:1'], network: 'none', onProgress: (e) => events.push(e) })
  assert.deepEqual([summary.names, summary.layers, summary.cached], [['node:1'], 4, 0])
  const steps = events.filter((e) => e.event === 'step')
  assert.deepEqual(steps.map((e) => e.line), [1, 2, 3, 4])
  assert.equal(steps[3].reason, 'not in the cache')
  assert.ok(events.some((e) => e.event === 'output' && e.stream === 'stdout' && e.data.toString() === 'out\n'))
  const again = await s.store.build(ctx, { tags: ['node:1'], network: 'none' })
  assert.equal(again.cached, 2)
  const image = isolette.Image.load('node:1', s.store)
  const out = await isolette.run(image, ['/bin/cat', '/hello.txt', '/ran'], { entrypoint: [] })
  assert.equal(out.stdout.toString(), 'hello\nran\n')
})

test('bad recipes, failing steps and an abort reject', async (t) => {
  const s = await storeWithBase(t)
  if (!s) return
  await assert.rejects(s.store.build(context(s.dir, 'FROM base\nNOPE x\n'), { tags: ['bad:1'] }),
    (e) => e.code === 'ERR_ISOLETTE_CONFIG' && /line 2/.test(e.message))
  await assert.rejects(s.store.build(context(s.dir, 'FROM base\nUSER root\nRUN exit 3\n'), { tags: ['bad:1'], network: 'none' }),
    (e) => e.code === 'ERR_ISOLETTE_BUILD' && e.line === 3 && e.exitCode === 3)
  await assert.rejects(s.store.build(context(s.dir, 'FROM base\n'), { tagz: ['x'] }), TypeError)
  const abort = new AbortController()
  const slow = s.store.build(context(s.dir, 'FROM base\nUSER root\nRUN sleep 30\n'), {
    tags: ['bad:1'],
    network: 'none',
    signal: abort.signal,
    onProgress: (e) => { if (e.event === 'step' && e.line === 2) setTimeout(() => abort.abort(), 200) },
  })
  const started = Date.now()
  await assert.rejects(slow, (e) => e.name === 'AbortError')
  assert.ok(Date.now() - started < 10000, 'the abort stops the step')
  await assert.rejects(s.store.build(context(s.dir, 'FROM base\n'), { signal: AbortSignal.abort() }), (e) => e.name === 'AbortError')
  assert.deepEqual(s.store.list().map((r) => r.name), ['base:latest'], 'nothing stored under a failed build')
})

function freePort () {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

async function waitForPort (port) {
  for (let i = 0; i < 200; i++) {
    const up = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true) })
      c.on('error', () => resolve(false))
    })
    if (up) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('docker-registry did not start')
}

test('push and pull through a registry', async (t) => {
  const s = await storeWithBase(t)
  if (!s) return
  try {
    execFileSync('sh', ['-c', 'command -v docker-registry'])
  } catch {
    return skip(t, "docker-registry is missing (Debian's docker-registry package)")
  }
  const port = await freePort()
  const config = path.join(s.dir, 'registry.yml')
  fs.writeFileSync(config, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${s.dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`)
  const registry = spawn('docker-registry', ['serve', config], { stdio: 'ignore' })
  t.after(() => registry.kill('SIGKILL'))
  await waitForPort(port)
  await s.store.build(context(s.dir, 'FROM base\nUSER root\nCOPY hello.txt /hello.txt\n'), { tags: ['node:2'], network: 'none' })
  const digest = await s.store.push('node:2', `127.0.0.1:${port}/node:2`)
  assert.match(digest, /^sha256:[0-9a-f]{64}$/)
  const other = new isolette.Store(path.join(s.dir, 'other'))
  const record = await other.pull(`127.0.0.1:${port}/node:2`)
  const pushed = s.store.list().find((r) => r.name === 'node:2')
  assert.deepEqual([record.id, record.layers], [pushed.id, pushed.layers])
  const out = await isolette.run(isolette.Image.load(`127.0.0.1:${port}/node:2`, other), ['/bin/cat', '/hello.txt'], { entrypoint: [] })
  assert.equal(out.stdout.toString(), 'hello\n')
  await assert.rejects(s.store.push('node:2', '127.0.0.1:1/node:2'), (e) => e.code === 'ERR_ISOLETTE_REGISTRY')
})
