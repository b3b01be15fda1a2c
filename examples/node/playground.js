'use strict'
// A Replit-style playground on isolette's Node package, with `node:http` only.
//
//   node examples/node/playground.js [--port 8080] [--host 127.0.0.1]
//
// GET /           the page: a code box, a language picker, stdin, a Run button
// POST /run       {language, code, stdin} -> the outcome as JSON (C++ compiled first);
//                 with ?stream=1, server-sent events: `stdout`/`stderr` as the program
//                 writes (JSON strings), then `outcome`
// POST /judge     {language, code, problem} -> the judge's JSON (as examples/src/bin/judge.rs)
//
// Requests are served concurrently; a bad request is a 400, a body over 1 MB a 413, and a
// client that goes away cancels its run (its AbortSignal).
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const isolette = require('isolette')

const HERE = __dirname
const EXAMPLES = path.join(HERE, '..')
const IMAGES = process.env.ISOLETTE_IMAGES || path.join(EXAMPLES, '..', '.cache', 'images')
const LANGUAGES = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'languages.json'), 'utf8'))
const MAX_BODY = 1 << 20
const RUN_LIMITS = { cpuTime: 2000, wallTime: 5000, memory: '256M', outputLimit: '1M', pids: 64 }

class BadRequest extends Error {}

/** A directory the sandbox's user may write (the server runs as root). */
function openDir () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'playground-'))
  fs.chmodSync(dir, 0o777)
  return dir
}

/** Compiles (when the language has a compile step) and hands the mounts for running. */
async function prepare (lang, code, signal) {
  const image = isolette.Image.open(path.join(IMAGES, lang.image))
  const submission = openDir()
  const out = openDir()
  fs.writeFileSync(path.join(submission, lang.source), code, { mode: 0o644 })
  const cleanup = () => {
    fs.rmSync(submission, { recursive: true, force: true })
    fs.rmSync(out, { recursive: true, force: true })
  }
  const mounts = (writable) => [
    { source: submission, target: '/submission' },
    { source: out, target: '/out', writable },
  ]
  let compile = null
  if (lang.compile) {
    const c = lang.compile
    const outcome = await isolette.run(image, c.command, {
      mounts: mounts(true),
      workdir: '/out',
      cpuTime: c.cpu_time_ms,
      wallTime: c.wall_time_ms,
      memory: c.memory_bytes,
      outputLimit: c.output_bytes,
      pids: 64,
      signal,
    })
    compile = { status: outcome.status, output: Buffer.concat([outcome.stdout, outcome.stderr]).toString() }
  }
  return { image, mounts: mounts(false), compile, cleanup }
}

function language (name) {
  if (typeof name !== 'string' || !Object.hasOwn(LANGUAGES, name)) {
    throw new BadRequest(`language must be one of ${Object.keys(LANGUAGES).join(', ')}`)
  }
  return LANGUAGES[name]
}

async function runRequest (body, signal) {
  const lang = language(body.language)
  if (typeof body.code !== 'string') throw new BadRequest('code must be a string')
  if (body.stdin !== undefined && typeof body.stdin !== 'string') throw new BadRequest('stdin must be a string')
  const job = await prepare(lang, body.code, signal)
  try {
    if (job.compile && job.compile.status !== 'ok') return { status: 'compile_error', compile: job.compile }
    const outcome = await isolette.run(job.image, lang.run, {
      ...RUN_LIMITS, mounts: job.mounts, workdir: '/out', stdin: body.stdin ?? '', signal,
    })
    return { ...outcome.toJSON(), compile: job.compile }
  } finally {
    job.cleanup()
  }
}

/** /run?stream=1: the program's output as server-sent events while it runs. */
async function streamRequest (body, signal, res) {
  const lang = language(body.language)
  if (typeof body.code !== 'string') throw new BadRequest('code must be a string')
  if (body.stdin !== undefined && typeof body.stdin !== 'string') throw new BadRequest('stdin must be a string')
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  const event = (name, data) => {
    if (!res.destroyed) res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`)
  }
  let job = null
  try {
    job = await prepare(lang, body.code, signal)
    if (job.compile && job.compile.status !== 'ok') {
      event('outcome', { status: 'compile_error', compile: job.compile })
      return
    }
    const running = isolette.spawn(job.image, lang.run, {
      ...RUN_LIMITS, mounts: job.mounts, workdir: '/out', stdin: body.stdin ?? '', stdout: 'pipe', stderr: 'pipe', signal,
    })
    // Read as it comes, from the start: the events go out as the program writes.
    const pump = (stream, name) => new Promise((resolve) => {
      stream.on('data', (chunk) => event(name, chunk.toString('utf8')))
      stream.on('end', resolve)
      stream.on('error', resolve)
    })
    const pumped = Promise.all([pump(running.stdout, 'stdout'), pump(running.stderr, 'stderr')])
    const outcome = await running.wait()
    await pumped
    event('outcome', { ...outcome.toJSON(), compile: job.compile })
  } catch (e) {
    if (e.name !== 'AbortError') event('error', { error: e.message, code: e.code })
  } finally {
    if (job) job.cleanup()
    res.end()
  }
}

async function judgeRequest (body, signal) {
  const lang = language(body.language)
  if (typeof body.code !== 'string') throw new BadRequest('code must be a string')
  if (typeof body.problem !== 'string' || !/^[a-z0-9-]+$/.test(body.problem)) throw new BadRequest('problem must be a problem name')
  const dir = path.join(EXAMPLES, 'problems', body.problem)
  if (!fs.existsSync(path.join(dir, 'limits.json'))) throw new BadRequest(`no problem \`${body.problem}\``)
  const limits = JSON.parse(fs.readFileSync(path.join(dir, 'limits.json'), 'utf8'))
  const job = await prepare(lang, body.code, signal)
  try {
    const report = { verdict: 'ok', compile: job.compile, tests: [] }
    if (job.compile && job.compile.status !== 'ok') return { ...report, verdict: 'compile_error' }
    const box = new isolette.Sandbox(job.image, {
      mounts: job.mounts,
      workdir: '/out',
      cpuTime: limits.cpu_time_ms,
      wallTime: limits.wall_time_ms,
      memory: limits.memory_bytes,
      outputLimit: limits.output_bytes,
      stderr: 'null',
    })
    for (let n = 1; n <= limits.tests; n++) {
      const o = await box.run(lang.run, { stdin: { path: path.join(dir, 'tests', `${n}.in`) }, signal })
      const expected = fs.readFileSync(path.join(dir, 'tests', `${n}.out`))
      const same = limits.compare === 'tokens'
        ? o.stdout.toString().split(/\s+/).filter(Boolean).join(' ') === expected.toString().split(/\s+/).filter(Boolean).join(' ')
        : o.stdout.equals(expected)
      const status = o.status === 'ok' && !same ? 'wrong_answer' : o.status
      report.tests.push({ test: n, status, cpu_ms: o.cpuTime, wall_ms: o.wallTime, memory_bytes: o.memoryPeak, exit_code: o.exitCode, signal: o.signal })
      if (status !== 'ok') {
        report.verdict = status
        break
      }
    }
    return report
  } finally {
    job.cleanup()
  }
}

/** The request's JSON body; a 413 past 1 MB, a 400 when it is not JSON. */
function readBody (req) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    req.on('data', (chunk) => {
      size += chunk.length
      if (size > MAX_BODY) {
        // Refused, and the rest is read and dropped, so the client gets the answer.
        const e = new Error('the request body is over 1 MB')
        e.status = 413
        chunks.length = 0
        reject(e)
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => {
      if (size > MAX_BODY) return
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')))
      } catch {
        reject(new BadRequest('the body must be JSON'))
      }
    })
    req.on('error', reject)
  })
}

function send (res, status, value, type = 'application/json') {
  if (res.writableEnded || res.destroyed) return
  const body = type === 'application/json' ? JSON.stringify(value) : value
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

async function handle (req, res) {
  if (req.method === 'GET' && req.url === '/') {
    return send(res, 200, fs.readFileSync(path.join(HERE, 'index.html')), 'text/html; charset=utf-8')
  }
  const routes = { '/run': runRequest, '/judge': judgeRequest, '/run?stream=1': null }
  if (req.method !== 'POST' || !Object.hasOwn(routes, req.url)) return send(res, 404, { error: 'not found' })
  // A client that goes away cancels its run.
  const abort = new AbortController()
  res.on('close', () => { if (!res.writableFinished) abort.abort() })
  try {
    const body = await readBody(req)
    if (body === null || typeof body !== 'object') throw new BadRequest('the body must be a JSON object')
    if (req.url === '/run?stream=1') return await streamRequest(body, abort.signal, res)
    send(res, 200, await routes[req.url](body, abort.signal))
  } catch (e) {
    if (e.name === 'AbortError') return
    if (e.status === 413) return send(res, 413, { error: e.message })
    if (e instanceof BadRequest || e.code === 'ERR_ISOLETTE_CONFIG') return send(res, 400, { error: e.message })
    send(res, 500, { error: e.message, code: e.code })
  }
}

function listen (port = 8080, host = '127.0.0.1') {
  const server = http.createServer((req, res) => { handle(req, res) })
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)))
}

if (require.main === module) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(name)
    return i > 0 ? process.argv[i + 1] : fallback
  }
  listen(Number(arg('--port', 8080)), arg('--host', '127.0.0.1')).then((server) => {
    const { address, port } = server.address()
    console.log(`playground on http://${address}:${port}/`)
  })
}

module.exports = { listen }
