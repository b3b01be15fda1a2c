'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const isolette = require('..')
const { image, ownCgroups, children, PROBE, IMAGES } = require('./helpers')

test('16 runs at once finish in about the time of the slowest, and fs is not starved', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  const started = Date.now()
  const runs = Array.from({ length: 16 }, () => isolette.run(busybox, [PROBE, 'sleep', '0.5'], { wallTime: 10000 }))
  // libuv's pool (4 threads) is free: a file read completes at once.
  const readStarted = Date.now()
  await fs.promises.readFile(__filename)
  const readTook = Date.now() - readStarted
  const outs = await Promise.all(runs)
  const took = Date.now() - started
  assert.deepEqual(outs.map((o) => o.status), Array(16).fill('ok'))
  assert.ok(took < 2500, `16 runs of 0.5 s took ${took} ms`)
  assert.ok(readTook < 200, `fs.readFile waited ${readTook} ms`)
})

test('the event loop keeps ticking while a run spins', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  const ticks = []
  const timer = setInterval(() => ticks.push(Date.now()), 10)
  const out = await isolette.run(busybox, [PROBE, 'spin'], { cpuTime: 1000, wallTime: 5000 })
  clearInterval(timer)
  assert.equal(out.status, 'cpu_time_limit')
  const gaps = ticks.slice(1).map((x, i) => x - ticks[i])
  assert.ok(ticks.length > 50, `${ticks.length} ticks`)
  assert.ok(Math.max(...gaps) < 100, `the loop stalled for ${Math.max(...gaps)} ms`)
})

test('aborting the signal kills the sandbox and rejects with an AbortError', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  const controller = new AbortController()
  const pending = isolette.run(busybox, [PROBE, 'sleep', '30'], { wallTime: 60000, signal: controller.signal })
  await new Promise((resolve) => setTimeout(resolve, 300))
  const started = Date.now()
  controller.abort()
  await assert.rejects(pending, { name: 'AbortError', code: 'ABORT_ERR' })
  const took = Date.now() - started
  assert.ok(took < 150, `abort took ${took} ms`)
  await assert.rejects(isolette.run(busybox, ['/bin/true'], { signal: AbortSignal.abort() }), { name: 'AbortError' })
})

test('spawn: streams line by line, stdin, kill', async (t) => {
  const busybox = image(t, 'busybox')
  if (!busybox) return
  const script = 'for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done'
  const running = isolette.spawn(busybox, ['/bin/sh', '-c', script], { stdout: 'pipe' })
  const arrivals = []
  for await (const chunk of running.stdout) {
    for (const line of chunk.toString().split('\n').filter(Boolean)) arrivals.push([Date.now(), line])
  }
  const out = await running.wait()
  assert.equal(out.status, 'ok')
  assert.deepEqual(arrivals.map(([, l]) => l), ['line 1', 'line 2', 'line 3', 'line 4', 'line 5'])
  const gaps = arrivals.slice(1).map(([at], i) => at - arrivals[i][0])
  assert.ok(gaps.every((g) => g > 50 && g < 500), JSON.stringify(gaps))

  const echo = isolette.spawn(busybox, [PROBE, 'stdin-echo'], { stdin: 'pipe', stdout: 'pipe' })
  const got = new Promise((resolve) => echo.stdout.once('data', (d) => resolve(d.toString())))
  echo.stdin.write('ping\n')
  assert.equal(await got, 'ping\n')
  echo.stdin.end()
  assert.equal((await echo.wait()).status, 'ok')

  const sleeper = isolette.spawn(busybox, [PROBE, 'sleep', '30'], { wallTime: 60000 })
  assert.ok(sleeper.pid > 1)
  sleeper.kill()
  assert.equal((await sleeper.wait()).status, 'cancelled')
})

test('a terminal REPL', async (t) => {
  const debian = image(t, 'debian-python')
  if (!debian) return
  const repl = isolette.spawn(debian, ['python3'], { tty: true, stdin: 'pipe', stdout: 'pipe', wallTime: 20000 })
  let seen = ''
  const until = (text) => new Promise((resolve) => {
    const check = () => { if (seen.includes(text)) { repl.stdout.off('data', on); resolve() } }
    const on = (d) => { seen += d.toString(); check() }
    repl.stdout.on('data', on)
    check()
  })
  await until('>>> ')
  repl.stdin.write('6*7\n')
  await until('42')
  repl.resize(50, 132)
  repl.stdin.write('exit()\n')
  assert.equal((await repl.wait()).status, 'ok')
})

test('works from worker threads', async (t) => {
  if (!image(t, 'busybox')) return
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const isolette = require(workerData.pkg)
    isolette.run(isolette.Image.open(workerData.image), ['/bin/echo', 'from a worker'])
      .then((o) => parentPort.postMessage(o.stdout.toString()), (e) => parentPort.postMessage('error: ' + e.message))
  `
  const results = await Promise.all([1, 2].map(() => new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { pkg: path.join(__dirname, '..'), image: path.join(IMAGES, 'busybox') } })
    w.once('message', resolve)
    w.once('error', reject)
  })))
  assert.deepEqual(results, ['from a worker\n', 'from a worker\n'])
})

test('nothing is left behind', async (t) => {
  if (!image(t, 'busybox')) return
  isolette.cleanup()
  assert.deepEqual(children(), [])
  assert.deepEqual(ownCgroups(), [])
})

test('gc removes what a process killed while its sandbox ran left', async (t) => {
  if (!image(t, 'busybox')) return
  const { spawn } = require('node:child_process')
  const code = `
    const isolette = require(${JSON.stringify(path.join(__dirname, '..'))})
    const running = isolette.spawn(isolette.Image.open(${JSON.stringify(path.join(IMAGES, 'busybox'))}),
      [${JSON.stringify(PROBE)}, 'sleep', '30'], { wallTime: 60000, memory: '64M' })
    console.log('started')
    running.wait()
  `
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise((resolve) => child.stdout.once('data', resolve))
  const bases = ['/sys/fs/cgroup/memory/isolette', '/sys/fs/cgroup/pids/isolette', '/sys/fs/cgroup/isolette']
  const mine = () => bases.filter((b) => fs.existsSync(b)).flatMap((b) => fs.readdirSync(b).filter((n) => n.startsWith(`${child.pid}-`)))
  assert.ok(mine().length > 0, 'the child\'s sandbox has no cgroup')
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  const { removed, busy } = isolette.gc()
  assert.deepEqual([busy, mine()], [[], []])
  assert.ok(removed.some((d) => d.includes(`/${child.pid}-`)), removed.join(' '))
})
