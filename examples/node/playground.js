'use strict'
// A Replit-style playground on isolette's Node package: an editor, a live terminal, every
// language of the catalog (examples/languages/).
//
//   node examples/node/playground.js [--port 8080] [--host 127.0.0.1]
//
// GET /            the page: a CodeMirror editor, an xterm.js terminal, the language picker
// GET /languages   [{id, name, highlight, hello}], from the catalog
// GET /tty         a WebSocket: the first message {language, code, rows, cols} compiles and
//                  starts the program on a terminal of that size; then the program's output
//                  comes as binary messages (its bytes, exactly), and text messages carry
//                  JSON: {type: 'compile', status, output}, then {type: 'exit', ...outcome}.
//                  The page sends {type: 'input', data} (typed keys; Ctrl-C is \x03, which
//                  the terminal turns into SIGINT) and {type: 'resize', rows, cols}.
//                  Closing the socket ends the sandbox.
// POST /run        {language, code, stdin} -> the outcome as JSON (compiled first when the
//                  language is); with ?stream=1, server-sent events: `stdout`/`stderr` as the
//                  program writes (JSON strings), then `outcome`
// POST /judge      {language, code, problem} -> the judge's JSON (as examples/src/bin/judge.rs)
//
// Images come from the store ($ISOLETTE_STORE, else the default one), built by
// scripts/build-language-images.sh. A bad request is a 400, a body over 1 MB a 413, and a
// client that goes away cancels its run.
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { WebSocketServer } = require('ws')
const isolette = require('isolette')

const HERE = __dirname
const EXAMPLES = path.join(HERE, '..')
const MAX_BODY = 1 << 20
const MEMORY = 256 << 20
// A run from the API; a terminal session waits for a person, so its wall time is long.
const RUN_LIMITS = { cpuTime: 2000, wallTime: 5000, outputLimit: '1M' }
const TTY_LIMITS = { cpuTime: 10000, wallTime: 300000, outputLimit: '4M' }
const FIELDS = ['name', 'image', 'source', 'compile', 'run', 'env', 'pids', 'memory_overhead_bytes', 'startup_cpu_ms',
  'memory_errors', 'seccomp', 'highlight']
const COMPILE_FIELDS = ['command', 'cpu_time_ms', 'wall_time_ms', 'memory_bytes', 'output_bytes', 'file_bytes', 'pids']

/** The catalog: every examples/languages/ID/language.json, each field checked, with its hello world. */
function loadCatalog (dir = path.join(EXAMPLES, 'languages')) {
  const catalog = {}
  for (const id of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, id, 'language.json')
    if (!fs.existsSync(file)) continue
    const lang = JSON.parse(fs.readFileSync(file, 'utf8'))
    let missing = FIELDS.find((key) => !Object.hasOwn(lang, key))
    const inCompile = lang.compile && COMPILE_FIELDS.find((key) => !Object.hasOwn(lang.compile, key))
    if (!missing && inCompile) missing = `compile.${inCompile}`
    if (missing) throw new Error(`${file}: the field \`${missing}\` is missing`)
    const hello = path.join(dir, id, `hello${path.extname(lang.source)}`)
    catalog[id] = { ...lang, id, hello: fs.readFileSync(hello, 'utf8') }
  }
  return catalog
}

const LANGUAGES = loadCatalog()

class BadRequest extends Error {}

/** A directory the sandbox's user may write (the server runs as root). */
function openDir () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'playground-'))
  fs.chmodSync(dir, 0o777)
  return dir
}

function language (name) {
  if (typeof name !== 'string' || !Object.hasOwn(LANGUAGES, name)) {
    throw new BadRequest(`language must be one of ${Object.keys(LANGUAGES).join(', ')}`)
  }
  return LANGUAGES[name]
}

/** The run's options from the language's profile: its environment and allowances. */
function runOptions (lang, limits) {
  const fill = (s) => s.replaceAll('{memory_mb}', String(limits.memory >> 20))
  return {
    argv: lang.run.map(fill),
    options: {
      cpuTime: Number(limits.cpuTime) + lang.startup_cpu_ms,
      wallTime: Number(limits.wallTime) + lang.startup_cpu_ms,
      memory: limits.memory + lang.memory_overhead_bytes,
      outputLimit: limits.outputLimit,
      pids: lang.pids,
      env: Object.fromEntries(Object.entries(lang.env).map(([k, v]) => [k, fill(v)])),
      seccomp: lang.seccomp,
    },
  }
}

/** The verdict of a run: a runtime's own out-of-memory error is a `memory_limit`. */
function verdict (lang, outcome) {
  const stderr = outcome.stderr ? outcome.stderr.toString('utf8') : ''
  if (['runtime_error', 'signaled'].includes(outcome.status) && lang.memory_errors.some((p) => stderr.includes(p))) {
    return 'memory_limit'
  }
  return outcome.status
}

/** Compiles (when the language has a compile step) and hands the mounts for running. */
async function prepare (lang, code, signal) {
  const image = isolette.Image.load(lang.image)
  const submission = openDir()
  const out = openDir()
  const cleanup = () => {
    fs.rmSync(submission, { recursive: true, force: true })
    fs.rmSync(out, { recursive: true, force: true })
  }
  try {
    fs.writeFileSync(path.join(submission, lang.source), code, { mode: 0o644 })
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
        fsize: c.file_bytes,
        pids: c.pids,
        env: runOptions(lang, { memory: MEMORY }).options.env,
        seccomp: lang.seccomp,
        signal,
      })
      compile = { status: outcome.status, output: Buffer.concat([outcome.stdout, outcome.stderr]).toString() }
    }
    return { image, mounts: mounts(false), compile, cleanup }
  } catch (e) {
    cleanup()
    throw e
  }
}

function checkCode (body) {
  if (typeof body.code !== 'string') throw new BadRequest('code must be a string')
  if (body.stdin !== undefined && typeof body.stdin !== 'string') throw new BadRequest('stdin must be a string')
}

async function runRequest (body, signal) {
  const lang = language(body.language)
  checkCode(body)
  const job = await prepare(lang, body.code, signal)
  try {
    if (job.compile && job.compile.status !== 'ok') return { status: 'compile_error', compile: job.compile }
    const { argv, options } = runOptions(lang, { ...RUN_LIMITS, memory: MEMORY })
    const outcome = await isolette.run(job.image, argv, {
      ...options, mounts: job.mounts, workdir: '/out', stdin: body.stdin ?? '', signal,
    })
    return { ...outcome.toJSON(), status: verdict(lang, outcome), compile: job.compile }
  } finally {
    job.cleanup()
  }
}

/** /run?stream=1: the program's output as server-sent events while it runs. */
async function streamRequest (body, signal, res) {
  const lang = language(body.language)
  checkCode(body)
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
    const { argv, options } = runOptions(lang, { ...RUN_LIMITS, memory: MEMORY })
    const running = isolette.spawn(job.image, argv, {
      ...options, mounts: job.mounts, workdir: '/out', stdin: body.stdin ?? '', stdout: 'pipe', stderr: 'pipe', signal,
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
  checkCode(body)
  if (typeof body.problem !== 'string' || !/^[a-z0-9-]+$/.test(body.problem)) throw new BadRequest('problem must be a problem name')
  const dir = path.join(EXAMPLES, 'problems', body.problem)
  if (!fs.existsSync(path.join(dir, 'limits.json'))) throw new BadRequest(`no problem \`${body.problem}\``)
  const limits = JSON.parse(fs.readFileSync(path.join(dir, 'limits.json'), 'utf8'))
  const job = await prepare(lang, body.code, signal)
  try {
    const report = { verdict: 'ok', compile: job.compile, tests: [] }
    if (job.compile && job.compile.status !== 'ok') return { ...report, verdict: 'compile_error' }
    const { argv, options } = runOptions(lang, {
      cpuTime: limits.cpu_time_ms, wallTime: limits.wall_time_ms, memory: limits.memory_bytes, outputLimit: limits.output_bytes,
    })
    const box = new isolette.Sandbox(job.image, { ...options, mounts: job.mounts, workdir: '/out' })
    for (let n = 1; n <= limits.tests; n++) {
      const o = await box.run(argv, { stdin: { path: path.join(dir, 'tests', `${n}.in`) }, signal })
      const expected = fs.readFileSync(path.join(dir, 'tests', `${n}.out`))
      const words = (b) => b.toString().split(/\s+/).filter(Boolean).join(' ')
      const same = limits.compare === 'tokens' ? words(o.stdout) === words(expected) : o.stdout.equals(expected)
      const status = o.status === 'ok' && !same ? 'wrong_answer' : verdict(lang, o)
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

/**
 * One terminal session over a WebSocket: compile, then the program on a terminal of the
 * page's size, until it ends or the socket closes (which kills it). Keys typed and resizes
 * made while it compiles reach the program once it starts.
 */
function ttySession (ws) {
  const abort = new AbortController()
  let running = null
  let started = false
  const early = []
  const send = (value) => { if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(value)) }
  const apply = (message) => {
    if (message.type === 'input' && typeof message.data === 'string') running.stdin.write(message.data)
    else if (message.type === 'resize') {
      try { running.resize(message.rows, message.cols) } catch (e) { send({ type: 'error', error: e.message }) }
    }
  }
  ws.on('close', () => abort.abort())
  ws.on('message', (data) => {
    let message
    try {
      message = JSON.parse(data.toString('utf8'))
    } catch {
      send({ type: 'error', error: 'messages must be JSON' })
      return ws.close()
    }
    if (running) return apply(message)
    if (started) return early.push(message)
    started = true
    start(message)
  })
  async function start (message) {
    let job = null
    try {
      const lang = language(message.language)
      checkCode(message)
      const size = [message.rows, message.cols].map(Number)
      if (!size.every((n) => Number.isInteger(n) && n > 0 && n < 1000)) throw new BadRequest('rows and cols must be terminal sizes')
      job = await prepare(lang, message.code, abort.signal)
      if (job.compile) send({ type: 'compile', ...job.compile })
      if (job.compile && job.compile.status !== 'ok') {
        send({ type: 'exit', status: 'compile_error' })
        return ws.close()
      }
      const { argv, options } = runOptions(lang, { ...TTY_LIMITS, memory: MEMORY })
      running = isolette.spawn(job.image, argv, {
        ...options, mounts: job.mounts, workdir: '/out', tty: size, stdin: 'pipe', stdout: 'pipe', signal: abort.signal,
      })
      early.splice(0).forEach(apply)
      running.stdout.on('data', (chunk) => { if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true }) })
      const ended = new Promise((resolve) => { running.stdout.on('end', resolve); running.stdout.on('error', resolve) })
      const outcome = await running.wait()
      await ended
      send({ type: 'exit', ...outcome.toJSON(), status: verdict(lang, outcome) })
      ws.close()
    } catch (e) {
      if (e.name !== 'AbortError') send({ type: 'error', error: e.message, code: e.code })
      ws.close()
    } finally {
      if (job) job.cleanup()
    }
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

// The page's scripts and styles, from the npm packages (only these files are served).
const modules = path.join(HERE, 'node_modules')
const modes = ['clike', 'python', 'go', 'rust', 'javascript', 'ruby', 'xml', 'css', 'htmlmixed', 'php', 'lua', 'perl',
  'shell', 'haskell', 'pascal', 'mllike']
const VENDOR = {
  'codemirror.js': 'codemirror/lib/codemirror.js',
  'codemirror.css': 'codemirror/lib/codemirror.css',
  'simple.js': 'codemirror/addon/mode/simple.js',
  ...Object.fromEntries(modes.map((m) => [`mode/${m}.js`, `codemirror/mode/${m}/${m}.js`])),
  'xterm.js': '@xterm/xterm/lib/xterm.js',
  'xterm.css': '@xterm/xterm/css/xterm.css',
  'addon-fit.js': '@xterm/addon-fit/lib/addon-fit.js',
}

async function handle (req, res) {
  if (req.method === 'GET' && req.url === '/') {
    return send(res, 200, fs.readFileSync(path.join(HERE, 'index.html')), 'text/html; charset=utf-8')
  }
  if (req.method === 'GET' && req.url === '/languages') {
    return send(res, 200, Object.values(LANGUAGES).map(({ id, name, highlight, hello }) => ({ id, name, highlight, hello })))
  }
  if (req.method === 'GET' && req.url.startsWith('/vendor/')) {
    const file = VENDOR[req.url.slice('/vendor/'.length)]
    if (!file) return send(res, 404, { error: 'not found' })
    const type = file.endsWith('.css') ? 'text/css' : 'text/javascript'
    return send(res, 200, fs.readFileSync(path.join(modules, file)), `${type}; charset=utf-8`)
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
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY })
  wss.on('connection', ttySession)
  server.on('upgrade', (req, socket, head) => {
    if (req.url !== '/tty') return socket.destroy()
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
  })
  server.on('close', () => { for (const ws of wss.clients) ws.terminate() })
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

module.exports = { listen, loadCatalog }
