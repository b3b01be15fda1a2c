'use strict'
// A Compose project from Node (`isolette.Project`): loaded, brought up in this process on
// its own network, reached by service name and through a published port, and taken down
// leaving nothing; bad input rejects with a code and Compose's words.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const isolette = require('..')
const { image, children, IMAGES } = require('./helpers')

// A TCP server on 9000 answering `db says $GREETING`.
const DB = [
  'import os, socket',
  "t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(('0.0.0.0', 9000)); t.listen()",
  "print('db ready', flush=True)",
  'while True:',
  "    c, _ = t.accept(); c.sendall(('db says ' + os.environ['GREETING']).encode()); c.close()",
].join('\n')
// A TCP server on 8000 answering what `db`, by its service name, said.
const WEB = [
  'import socket',
  "t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(('0.0.0.0', 8000)); t.listen()",
  'while True:',
  "    c, _ = t.accept(); d = socket.create_connection(('db', 9000), timeout=5).recv(100); c.sendall(b'web saw: ' + d); c.close()",
].join('\n')

/** A project directory with `yaml` as its compose.yaml, or null after skipping. */
function projectDir (t, yaml) {
  if (!image(t, 'debian-python')) return null
  if (!fs.existsSync('/usr/bin/slirp4netns')) {
    if (process.env.ISOLETTE_TEST_STRICT === '1') throw new Error('slirp4netns is missing')
    t.skip('slirp4netns is missing (scripts/setup.sh installs it)')
    return null
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-compose-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.writeFileSync(path.join(dir, 'compose.yaml'), yaml.replaceAll('IMAGE', path.join(IMAGES, 'debian-python')))
  return dir
}

function freePort () {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** What the service on `port` answers; until it listens, slirp4netns accepts and closes
 * at once, so an empty answer is tried again for up to 5 s. */
async function get (port) {
  const deadline = Date.now() + 5000
  for (;;) {
    const got = await new Promise((resolve, reject) => {
      const chunks = []
      net.connect(port, '127.0.0.1').on('data', (d) => chunks.push(d)).on('end', () => resolve(Buffer.concat(chunks).toString()))
        .on('error', reject)
    })
    if (got || Date.now() >= deadline) return got
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

test('a project comes up in this process and down leaves nothing', async (t) => {
  const port = await freePort()
  const dir = projectDir(t, `
services:
  web:
    image: IMAGE
    command: ["python3", "-c", ${JSON.stringify(WEB)}]
    ports: ["127.0.0.1:${port}:8000"]
    depends_on:
      db: {condition: service_healthy}
  db:
    image: IMAGE
    command: ["python3", "-c", ${JSON.stringify(DB)}]
    environment:
      GREETING: \${GREETING:-hello}
    volumes: [data:/data]
    healthcheck:
      test: ["CMD", "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 9000), timeout=1)"]
      interval: 200ms
      retries: 50
volumes:
  data:
`)
  if (!dir) return
  const project = isolette.Project.load({ dir, projectName: 'nodeproj', environment: { GREETING: 'hi' } })
  assert.equal(project.name, 'nodeproj')
  assert.deepEqual(project.services, ['db', 'web'])
  assert.equal(project.config().services.db.environment.GREETING, 'hi')
  const store = new isolette.Store(path.join(dir, '.store'))
  const networks = path.join(dir, '.networks')
  const lines = []
  const running = await project.up({ store, networks, wait: true, onProgress: (l) => lines.push(l) })
  assert.ok(lines.includes(' Network nodeproj_default  Created'), lines.join('\n'))
  assert.ok(lines.indexOf(' Sandbox nodeproj-db-1  Started') < lines.indexOf(' Sandbox nodeproj-web-1  Started'))
  const ps = running.ps()
  assert.deepEqual(ps.map((s) => [s.service, s.name, s.state]), [['db', 'nodeproj-db-1', 'running'], ['web', 'nodeproj-web-1', 'running']])
  assert.equal(ps[0].health, 'healthy')
  assert.deepEqual(ps[1].ports, [`127.0.0.1:${port}->8000/tcp`])
  assert.equal(await get(port), 'web saw: db says hi')
  await running.wait('db')
  await running.wait('web', 'service_started')
  await assert.rejects(running.wait('web', 'ready'), { code: 'ERR_ISOLETTE_CONFIG', message: /condition `ready`: expected service_started/ })
  const deadline = Date.now() + 10000
  while (!running.logs('db').stdout.toString().includes('db ready\n')) {
    assert.ok(Date.now() < deadline, 'db never logged that it was ready')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  assert.throws(() => running.logs('nope'), { code: 'ERR_ISOLETTE_CONFIG' })
  await running.down()
  assert.deepEqual(running.ps().map((s) => s.state), ['exited', 'exited'])
  assert.deepEqual(fs.readdirSync(networks).filter((n) => fs.statSync(path.join(networks, n)).isDirectory()), [])
  assert.deepEqual(children(), [])
  assert.ok(!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(networks), 'a network namespace is still mounted')
  await new Promise((resolve, reject) => net.createServer().on('error', reject).listen(port, '127.0.0.1', function () { this.close(resolve) }))
  assert.deepEqual(fs.readdirSync(path.join(dir, '.store', 'volumes')), ['nodeproj_data'])
  // down({ volumes: true }) removes the named volume.
  await (await project.up({ store, networks })).down({ volumes: true })
  assert.deepEqual(fs.readdirSync(path.join(dir, '.store', 'volumes')), [])
})

test('an unhealthy dependency and bad input reject with a code and Compose\'s words', async (t) => {
  const dir = projectDir(t, `
services:
  db:
    image: IMAGE
    command: ["sleep", "600"]
    healthcheck: {test: ["CMD", "false"], interval: 100ms, retries: 2}
  web:
    image: IMAGE
    command: ["sleep", "600"]
    depends_on: {db: {condition: service_healthy}}
`)
  if (!dir) return
  const project = isolette.Project.load({ dir, projectName: 'bad' })
  await assert.rejects(project.up({ store: path.join(dir, '.store'), networks: path.join(dir, '.networks') }), {
    code: 'ERR_ISOLETTE_CONFIG',
    message: 'invalid config: dependency failed to start: bad-db-1 is unhealthy',
  })
  assert.deepEqual(children(), [])
  // Aborted while it waits for db: what was started is stopped again.
  const controller = new AbortController()
  setTimeout(() => controller.abort(), 100)
  fs.writeFileSync(path.join(dir, 'compose.yaml'), fs.readFileSync(path.join(dir, 'compose.yaml'), 'utf8').replace('retries: 2', 'retries: 1000'))
  await assert.rejects(isolette.Project.load({ dir, projectName: 'bad' }).up({ store: path.join(dir, '.store'), networks: path.join(dir, '.networks'), signal: controller.signal }), { name: 'AbortError' })
  assert.deepEqual(children(), [])
  fs.writeFileSync(path.join(dir, 'compose.yaml'), 'services:\n  a:\n    image: x\n    deploy: {}\n')
  assert.throws(() => isolette.Project.load({ dir }), { code: 'ERR_ISOLETTE_CONFIG', message: /services\.a\.deploy/ })
  fs.writeFileSync(path.join(dir, 'compose.yaml'), 'services:\n  a: [\n')
  assert.throws(() => isolette.Project.load({ dir }), { code: 'ERR_ISOLETTE_CONFIG', message: /compose\.yaml: line 3 column 1/ })
  assert.throws(() => isolette.Project.load({ dri: dir }), TypeError)
})
