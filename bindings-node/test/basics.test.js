'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const isolette = require('..')
const { image, PROBE } = require('./helpers')

test('a run and its outcome', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  const out = await isolette.run(busybox, ['/bin/echo', 'hi'])
  assert.ok(out instanceof isolette.Outcome)
  assert.equal(out.status, 'ok')
  assert.deepEqual([out.exitCode, out.signal, out.stdout.toString(), out.stderr.length], [0, null, 'hi\n', 0])
  assert.ok(Buffer.isBuffer(out.stdout) && out.wallTime > 0 && out.wallTime < 5000 && out.memoryPeak > 0)
  const json = out.toJSON()
  assert.deepEqual(Object.keys(json), [
    'status', 'exit_code', 'signal', 'cpu_time', 'user_time', 'system_time', 'wall_time', 'setup_time',
    'memory_peak', 'approximate', 'stdout_truncated', 'stderr_truncated', 'stdout', 'stderr',
  ])
  assert.ok(json.wall_time < 5, 'seconds, as the CLI')
  assert.equal(JSON.parse(JSON.stringify(out)).stdout, 'hi\n')
})

test("the statuses are core's, in core's order", () => {
  const native = require(path.join(__dirname, '..', 'isolette.node'))
  assert.deepEqual([...isolette.STATUSES], native.statuses())
})

test('verdicts are values, not rejections', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  const status = async (argv, options) => (await isolette.run(busybox, argv, options)).status
  assert.equal(await status([PROBE, 'exit', '3']), 'runtime_error')
  assert.equal(await status([PROBE, 'kill-self', 'SEGV']), 'signaled')
  assert.equal(await status([PROBE, 'spin'], { cpuTime: 200 }), 'cpu_time_limit')
  assert.equal(await status([PROBE, 'sleep', '5'], { wallTime: '200ms' }), 'wall_time_limit')
  assert.equal(await status([PROBE, 'memhog', '100M'], { memory: '32M' }), 'memory_limit')
  assert.equal(await status([PROBE, 'write-bytes', '100000'], { outputLimit: 1000 }), 'output_limit')
  assert.equal(await status([PROBE, 'try-syscall', 'bpf'], { seccomp: { deny: ['bpf'] } }), 'syscall_blocked')
})

test('bytes pass through exactly', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  let out = await isolette.run(busybox, [PROBE, 'args', Buffer.from([0xff, 0xfe]), 'café', '', '-x'])
  assert.deepEqual(out.stdout, Buffer.concat([Buffer.from([0xff, 0xfe, 0]), Buffer.from('café\0\0-x\0')]))
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  out = await isolette.run(busybox, [PROBE, 'stdin-echo'], { stdin: all })
  assert.deepEqual(out.stdout, all)
  out = await isolette.run(busybox, [PROBE, 'env'], { env: { LANG: 'C', N: 7 } })
  assert.match(out.stdout.toString(), /LANG=C\n/)
  assert.match(out.stdout.toString(), /N=7\n/)
})

test('sizes and durations in every form', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  for (const memory of [64 << 20, '64M']) {
    assert.equal((await isolette.run(busybox, ['/bin/true'], { memory })).status, 'ok')
  }
  for (const wallTime of [200, '200ms', '0.2s']) {
    const out = await isolette.run(busybox, [PROBE, 'sleep', '5'], { wallTime })
    assert.equal(out.status, 'wall_time_limit')
    assert.ok(out.wallTime < 1500)
  }
})

test('options are checked', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  await assert.rejects(isolette.run(busybox, ['/bin/true'], { memroy: '1G' }), { name: 'TypeError', message: /unknown option `memroy`/ })
  assert.throws(() => new isolette.Sandbox(busybox, { wall: 1 }), TypeError)
  const bad = [
    { memory: -1 }, { memory: 'lots' }, { memory: 1.5 }, { wallTime: -1 }, { wallTime: 'soon' }, { pids: 2.5 },
    { stdout: 'somewhere' }, { seccomp: 'strict' }, { seccomp: { deny: ['no_such_call'] } }, { user: [0, 0] },
    { env: { 'A=B': 'c' } }, { tty: 'yes' }, { mounts: ['nocolon'] }, { stdin: 3.5 }, { hostname: '' },
  ]
  for (const options of bad) {
    await assert.rejects(isolette.run(busybox, ['/bin/true'], options), (e) => {
      assert.equal(e.code, 'ERR_ISOLETTE_CONFIG', JSON.stringify(options))
      assert.ok(e instanceof isolette.IsoletteError && e instanceof Error)
      return true
    })
  }
})

test('errors carry a code', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  assert.throws(() => isolette.Image.open(path.join(os.tmpdir(), 'no-such-image')), { code: 'ERR_ISOLETTE_IMAGE' })
  await assert.rejects(isolette.run(busybox, ['no-such-command']), { code: 'ERR_ISOLETTE_COMMAND_NOT_FOUND' })
  await assert.rejects(isolette.run(busybox, ['/bin/true'], { workdir: '/no/such/dir' }), (e) => {
    assert.deepEqual([e.code, e.step, e.errno, e.path], ['ERR_ISOLETTE_SETUP', 'workdir', 2, '/no/such/dir'])
    return true
  })
  await assert.rejects(isolette.run(busybox, []), { code: 'ERR_ISOLETTE_CONFIG' })
  await assert.rejects(isolette.run(busybox, ['/bin/echo', 'a\0b']), { code: 'ERR_ISOLETTE_CONFIG' })
  assert.throws(() => isolette.Image.load('no-such-image:1', fs.mkdtempSync(path.join(os.tmpdir(), 'store-'))), { code: 'ERR_ISOLETTE_IMAGE' })
})

test('a sandbox keeps options and takes overrides', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  const box = new isolette.Sandbox(busybox, { wallTime: 3000, memory: '64M', env: { WHO: 'box' } })
  assert.match((await box.run([PROBE, 'env'])).stdout.toString(), /WHO=box/)
  assert.match((await box.run([PROBE, 'env'], { env: { WHO: 'run' } })).stdout.toString(), /WHO=run/)
  assert.equal((await box.run([PROBE, 'sleep', '2'], { wallTime: 100 })).status, 'wall_time_limit')
})

test('a terminal', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  const out = await isolette.run(busybox, ['/bin/sh', '-c', 'tty; stty size'], { tty: [30, 100] })
  assert.equal(out.stdout.toString(), '/dev/pts/0\r\n30 100\r\n')
})

test('a real program in the Debian image, and a small judge loop', async (t) => {
  const debian = image(t, 'debian-python')
  if (!debian) return
  const out = await isolette.run(debian, ['python3', '-c', 'import math; print(math.factorial(20))'], { wallTime: 10000 })
  assert.deepEqual([out.status, out.stdout.toString()], ['ok', '2432902008176640000\n'])
  const box = new isolette.Sandbox(debian, { memory: '128M', cpuTime: 2000, wallTime: 5000, pids: 16 })
  const solution = 'n = int(input()); print(sum(range(n + 1)))'
  const cases = [['10\n', '55\n'], ['100\n', '5050\n'], ['0\n', '0\n'], ['x\n', '?']]
  const verdicts = []
  for (const [given, expected] of cases) {
    const o = await box.run(['python3', '-c', solution], { stdin: given })
    verdicts.push(o.status !== 'ok' ? o.status : o.stdout.toString() === expected ? 'accepted' : 'wrong_answer')
  }
  assert.deepEqual(verdicts, ['accepted', 'accepted', 'accepted', 'runtime_error'])
})

test('a store imports an image, with progress, and runs it by name', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  const archive = path.join(__dirname, '..', '..', '.cache', 'oci-fixtures', 'two-layer.oci.tar')
  if (!fs.existsSync(archive)) {
    if (process.env.ISOLETTE_TEST_STRICT === '1') throw new Error('the OCI fixtures are missing; run scripts/build-oci-fixtures.sh')
    t.skip('the OCI fixtures are missing')
    return
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'store-'))
  const store = new isolette.Store(dir)
  const seen = []
  const record = await store.import(archive, { name: 'two:1', onProgress: (p) => seen.push(p) })
  assert.equal(record.name, 'two:1')
  assert.ok(seen.length >= 1 && seen.at(-1).bytes === seen.at(-1).totalBytes, JSON.stringify(seen))
  assert.deepEqual(store.list().map((r) => r.name), ['two:1'])
  const loaded = isolette.Image.load('two:1', store)
  assert.equal(loaded.layers.length, 2)
  await assert.rejects(store.import(path.join(dir, 'missing.tar')), { code: 'ERR_ISOLETTE_IMAGE' })
  // The image opened above still holds its layers (a lease): the record goes, they stay.
  assert.ok(Array.isArray(store.remove('two:1')))
  assert.deepEqual(store.list(), [])
  fs.rmSync(dir, { recursive: true })
})

test('the ESM entry point is the same package', async () => {
  const esm = await import(path.join(__dirname, '..', 'index.mjs'))
  assert.equal(esm.run, isolette.run)
  assert.equal(esm.default.Sandbox, isolette.Sandbox)
})

test('networks: loopback up, and a published port', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  const net = require('node:net')
  const lo = await isolette.run(busybox, ['sh', '-c', 'ip -o link | wc -l'])
  assert.equal(lo.stdout.toString(), '1\n')
  const running = isolette.spawn(busybox, ['sh', '-c', 'echo served | nc -l -p 8000'], { publish: ['0:8000'], wallTime: '10s' })
  assert.equal(running.ports.length, 1)
  const [hostPart, sandboxPart] = running.ports[0].split('->')
  assert.equal(sandboxPart, '8000/tcp')
  const port = Number(hostPart.split(':').pop())
  let got = ''
  for (let i = 0; i < 100 && got === ''; i++) {
    got = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1')
      let data = ''
      c.on('data', (d) => { data += d })
      c.on('close', () => resolve(data))
      c.on('error', () => resolve(''))
    })
    if (got === '') await new Promise((resolve) => setTimeout(resolve, 50))
  }
  assert.equal(got, 'served\n')
  assert.equal((await running.wait()).status, 'ok')
  for (const options of [
    { publish: '8080:80' },
    { publish: ['nonsense'] },
    { egress: [['maybe', '1.1.1.1']] },
    { network: 'outbound', egress: ['permit:1.1.1.1'] },
    { network: 'nowhere' },
  ]) {
    await assert.rejects(isolette.run(busybox, ['true'], options), { code: 'ERR_ISOLETTE_CONFIG' }, JSON.stringify(options))
  }
})
