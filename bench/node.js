'use strict'
// The Node binding's cost per run, against the Rust loop, in one run on one machine.
//
//   bench/node.sh            (as root; builds what it needs, then runs this)
//
// Interleaved rounds: Node runs (one at a time, awaited), then the Rust loop
// (core/examples/run_loop.rs), again and again. Then, in rounds of their own, the same
// Node loop in a process whose heap holds 1 GiB (touched) against a fresh one.
const { execFileSync } = require('node:child_process')
const path = require('node:path')

const [imageDir, runLoop] = process.argv.slice(2)
const ROUNDS = Number(process.env.ROUNDS || 10)
const PER_ROUND = Number(process.env.PER_ROUND || 40)
const pkg = path.join(__dirname, '..', 'bindings-node')
const isolette = require(pkg)

async function nodeRound (image, n) {
  const times = []
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint()
    const out = await isolette.run(image, ['/bin/true'], { memory: 256 << 20, pids: 64 })
    times.push(Number(process.hrtime.bigint() - t) / 1000)
    if (out.status !== 'ok') throw new Error(`/bin/true ended ${out.status}`)
  }
  return times
}

function rustRound (n) {
  return execFileSync(runLoop, [imageDir, String(n)], { encoding: 'utf8' }).split(/\s+/).filter(Boolean).map(Number)
}

function heldRound (mib, n) {
  const code = `
    const isolette = require(${JSON.stringify(pkg)})
    const hold = ${mib} ? Buffer.alloc(${mib} * 1024 * 1024, 1) : null
    ;(async () => {
      const image = isolette.Image.open(${JSON.stringify(imageDir)})
      await isolette.run(image, ['/bin/true'])
      const times = []
      for (let i = 0; i < ${n}; i++) {
        const t = process.hrtime.bigint()
        await isolette.run(image, ['/bin/true'], { memory: 256 << 20, pids: 64 })
        times.push(Number(process.hrtime.bigint() - t) / 1000)
      }
      console.log(JSON.stringify(times), hold ? hold.length : 0)
    })()`
  return JSON.parse(execFileSync(process.execPath, ['-e', code], { encoding: 'utf8' }).split(' ')[0])
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

;(async () => {
  const image = isolette.Image.open(imageDir)
  await nodeRound(image, 5)
  const node = []
  const rust = []
  const held = { 0: [], 1024: [] }
  // Two phases: a 1 GiB process leaves the machine's caches cold for whatever runs next,
  // so the processes holding memory do not take turns with the Node and Rust loops.
  for (let r = 0; r < ROUNDS; r++) {
    node.push(...await nodeRound(image, PER_ROUND))
    rust.push(...rustRound(PER_ROUND))
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const mib of [0, 1024]) held[mib].push(...heldRound(mib, PER_ROUND / 2))
  }
  const ms = (us) => (us / 1000).toFixed(3)
  console.log(`isolette from Node, /bin/true with memory + pids limits, ${ROUNDS} x ${PER_ROUND} runs, interleaved`)
  console.log(`  Rust loop (core/examples/run_loop.rs)   p50 ${ms(median(rust))} ms`)
  console.log(`  Node loop (await isolette.run)          p50 ${ms(median(node))} ms  (+${ms(median(node) - median(rust))} ms per run)`)
  const base = median(held[0])
  const big = median(held[1024])
  console.log(`  Node process holding    0 MiB           p50 ${ms(base)} ms`)
  console.log(`  Node process holding 1024 MiB           p50 ${ms(big)} ms  (${(big / base).toFixed(2)}x)`)
})()
