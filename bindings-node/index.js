'use strict'
/**
 * isolette for Node.js: run untrusted code in a fresh Linux sandbox per request, and get
 * back an exact verdict. Everything happens in the native addon (the Rust library); this
 * file shapes it for JavaScript: camelCase options checked by name, Promises,
 * `AbortSignal`, Node streams, and errors with a `code`.
 *
 *   const isolette = require('isolette')
 *   const image = isolette.Image.open('/srv/images/python')
 *   const out = await isolette.run(image, ['python3', '-c', 'print(6*7)'], { memory: '256M', wallTime: 2000 })
 *   // out.status === 'ok', out.stdout.toString() === '42\n'
 *
 * Runs never block the event loop nor take a thread of libuv's pool: core supervises each
 * sandbox on a thread of its own, and the addon waits on an fd through its own runtime.
 */

const net = require('node:net')
const path = require('node:path')

const native = require(path.join(__dirname, 'isolette.node'))

/** Every option `run`, `spawn` and `Sandbox` take. */
const OPTIONS = [
  'memory', 'cpuTime', 'wallTime', 'pids', 'outputLimit', 'fsize', 'tmpfsSize', 'nofile', 'stack',
  'cpus', 'cpuset', 'env', 'workdir', 'mounts', 'stdin', 'stdout', 'stderr', 'seccomp',
  'seccompAction', 'cgroup', 'sys', 'user', 'userNamespace', 'hostname', 'entrypoint', 'tty', 'signal',
  'network', 'publish', 'hostLoopback', 'egress',
]
const KNOWN = new Set(OPTIONS)

/** How a run ended: `'ok'`, `'runtime_error'`, ... */
const STATUSES = [
  'ok', 'runtime_error', 'signaled', 'cpu_time_limit', 'wall_time_limit', 'memory_limit', 'output_limit',
  'syscall_blocked', 'cancelled',
]

/** An error of isolette: `code` is `ERR_ISOLETTE_CONFIG`, `_IMAGE`, `_COMMAND_NOT_FOUND`,
 * `_HOST`, `_SETUP`, `_IO`, `_REGISTRY` or `_BUILD`; `step`, `errno` and `path` where core
 * has them, and a failed build step's `line` and `exitCode`. */
class IsoletteError extends Error {
  constructor (message, { code, step = null, errno = null, path = null, line = null, exit_code: exitCode = null } = {}) {
    super(message)
    this.name = 'IsoletteError'
    this.code = code
    this.step = step
    this.errno = errno
    this.path = path
    if (code === 'ERR_ISOLETTE_BUILD') {
      this.line = line
      this.exitCode = exitCode
    }
  }
}

/** A native error rebuilt as an `IsoletteError` (others pass unchanged). */
function rebuild (e) {
  if (e && typeof e.message === 'string' && e.message.startsWith('isolette:')) {
    const d = JSON.parse(e.message.slice('isolette:'.length))
    return new IsoletteError(d.message, d)
  }
  return e
}

function call (f) {
  try {
    return f()
  } catch (e) {
    throw rebuild(e)
  }
}

function configError (message) {
  return new IsoletteError(message, { code: 'ERR_ISOLETTE_CONFIG' })
}

/** Awaits a native job's result (a build, an `up`), calling `drain` every 50 ms and once
 * more at the end for the events it queued; `signal` cancels the job, which then rejects
 * with an `AbortError`. */
async function follow (job, drain, signal) {
  const abort = () => job.cancel()
  if (signal) signal.addEventListener('abort', abort, { once: true })
  const timer = setInterval(drain, 50)
  try {
    const result = await job.result()
    drain()
    return result
  } catch (e) {
    drain()
    if (signal && signal.aborted) throw abortError(signal)
    throw rebuild(e)
  } finally {
    clearInterval(timer)
    if (signal) signal.removeEventListener('abort', abort)
  }
}

/** An image: unpacked layer directories, lowest first. */
class Image {
  constructor (handle) {
    this._native = handle
  }

  /** An image from one unpacked directory. */
  static open (dir) {
    return new Image(call(() => native.Image.open(String(dir))))
  }

  /** An image from layer directories, lowest first. */
  static fromLayers (layers) {
    return new Image(call(() => native.Image.fromLayers(Array.from(layers, String))))
  }

  /** Image `name` ('python:3.12') from a store (its directory), or the default store. */
  static load (name, store) {
    const dir = store instanceof Store ? store.path : store
    return new Image(call(() => native.Image.load(name, dir == null ? undefined : String(dir))))
  }

  /** The layer directories, lowest first. */
  get layers () {
    return this._native.layers
  }
}

/** The image store. */
class Store {
  constructor (dir) {
    this._native = call(() => new native.Store(dir == null ? undefined : String(dir)))
  }

  get path () { return this._native.path }

  /** Imports an OCI layout, an oci-archive or a `docker save` archive; its record.
   * `onProgress({ layer, layers, bytes, totalBytes })` is called as layers unpack. */
  async import (source, { name, onProgress } = {}) {
    const job = call(() => this._native.importStart(String(source), name))
    let last = ''
    const report = () => {
      const p = job.progress()
      if (p === null || !onProgress || p.join() === last) return
      last = p.join()
      onProgress({ layer: p[0], layers: p[1], bytes: p[2], totalBytes: p[3] })
    }
    const timer = onProgress ? setInterval(report, 50) : null
    try {
      const record = await job.record()
      report()
      return record
    } catch (e) {
      throw rebuild(e)
    } finally {
      if (timer) clearInterval(timer)
    }
  }

  /** Builds the Dockerfile in `context` (`isolette build`) and stores the image under
   * `tags`; resolves to the summary (`id`, `names`, `layers`, `size`, `steps`, `cached`).
   * `onProgress(event)` hears each step as it ends (`{ event: 'step', ... }` with the
   * fields `isolette build --json` prints), a RUN's output (`{ event: 'output', step,
   * stream, data }`, data a Buffer) and notes (`{ event: 'note', message }`). `signal`
   * (an `AbortSignal`) stops the build, which rejects with an `AbortError`. A failed step
   * rejects with `ERR_ISOLETTE_BUILD` (`line`, `exitCode`). */
  async build (context, options = {}) {
    const { onProgress, signal, tags, dockerfile, buildArgs, target, noCache, network, sourceDateEpoch, memory, cpuTime, wallTime, ...rest } = options
    const unknown = Object.keys(rest)
    if (unknown.length) throw new TypeError(`unknown build option \`${unknown[0]}\``)
    if (signal && signal.aborted) throw abortError(signal)
    const ms = (v) => typeof v === 'number' ? `${v}ms` : v
    const job = call(() => this._native.buildStart(String(context), {
      tags: tags == null ? undefined : Array.from(tags, String),
      dockerfile: dockerfile == null ? undefined : String(dockerfile),
      buildArgs: buildArgs == null ? undefined : Object.fromEntries(Object.entries(buildArgs).map(([k, v]) => [k, String(v)])),
      target,
      noCache,
      network,
      sourceDateEpoch,
      memory: memory == null ? undefined : String(memory),
      cpuTime: cpuTime == null ? undefined : ms(cpuTime),
      wallTime: wallTime == null ? undefined : ms(wallTime),
    }))
    const drain = () => {
      for (const e of job.events()) {
        if (!onProgress) continue
        if (e.event === 'step') onProgress({ event: 'step', ...JSON.parse(e.json) })
        else if (e.event === 'output') onProgress({ event: 'output', step: e.step, stream: e.stream, data: e.data })
        else onProgress({ event: e.event, message: e.message })
      }
    }
    return JSON.parse(await follow(job, drain, signal))
  }

  /** Pulls `reference` ('python:3.12', 'localhost:5000/app:1') into the store; its record.
   * `insecure` lists registries that may be spoken to over plain HTTP. */
  async pull (reference, { insecure } = {}) {
    try {
      return await this._native.pull(String(reference), insecure)
    } catch (e) {
      throw rebuild(e)
    }
  }

  /** Pushes image `name` to `reference` (`name` itself by default); the manifest's digest. */
  async push (name, reference, { insecure } = {}) {
    try {
      return await this._native.push(String(name), reference == null ? undefined : String(reference), insecure)
    } catch (e) {
      throw rebuild(e)
    }
  }

  list () { return call(() => this._native.list()) }
  remove (name) { return call(() => this._native.remove(name)) }
  prune () { return call(() => this._native.prune()) }
}

/** What a run gave: times in milliseconds, output as Buffers. Its fields are core's
 * (`Outcome::fields`, in JavaScript's names and units), so a field added there is here. */
class Outcome {
  constructor (n) {
    for (const f of n.fields()) this[f.name] = f.number ?? f.text ?? f.flag ?? f.bytes ?? null
    Object.defineProperty(this, '_native', { value: n })
  }

  /** The CLI's `--json` object, made by core: names and units (seconds) as there, output
   * as text when it is UTF-8, else as `stdout_base64` / `stderr_base64`. */
  toJSON () {
    return JSON.parse(this._native.toJson())
  }
}

/** Normalizes `options` for the addon; a name it does not know is a TypeError. */
function normalize (options) {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object')
  const o = {}
  for (const [key, value] of Object.entries(options)) {
    if (!KNOWN.has(key)) throw new TypeError(`unknown option \`${key}\`; the options are: ${OPTIONS.join(', ')}`)
    if (value === undefined) continue
    switch (key) {
      case 'signal':
        break
      case 'stdin':
        if (value === null) o.stdinMode = 'null'
        else if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
          o.stdinMode = 'bytes'
          o.stdinData = Buffer.from(value)
        } else if (typeof value === 'string' && (value === 'pipe' || value === 'inherit')) o.stdinMode = value
        else if (typeof value === 'string') {
          o.stdinMode = 'bytes'
          o.stdinData = Buffer.from(value, 'utf8')
        } else if (typeof value === 'object' && typeof value.path === 'string') {
          o.stdinMode = 'file'
          o.stdinPath = value.path
        } else throw configError("option `stdin` must be a Buffer, a string, null, 'pipe', 'inherit' or { path }")
        break
      case 'stdout':
      case 'stderr':
        if (typeof value === 'string') o[`${key}Mode`] = value
        else if (value && typeof value === 'object' && typeof value.path === 'string') {
          o[`${key}Mode`] = 'file'
          o[`${key}Path`] = value.path
        } else throw configError(`option \`${key}\` must be 'capture', 'pipe', 'null', 'inherit' or { path }`)
        break
      case 'seccomp':
        if (typeof value === 'string') o.seccomp = value
        else if (value && Array.isArray(value.deny)) o.seccomp = `deny:${value.deny.join(',')}`
        else if (value && Array.isArray(value.allow)) o.seccomp = `allow:${value.allow.join(',')}`
        else throw configError("option `seccomp` must be 'default', 'off', { deny: [...] } or { allow: [...] }")
        break
      case 'mounts':
        if (!Array.isArray(value)) throw configError('option `mounts` must be an array')
        o.mounts = value.map((m) => {
          if (typeof m === 'string') return m
          if (m && typeof m === 'object') return `${m.source}:${m.target}${m.writable ? ':rw' : ''}`
          throw configError("option `mounts` must hold 'SRC:DST[:rw]' strings or { source, target, writable }")
        })
        break
      case 'tty':
        if (Array.isArray(value)) o.ttySize = value
        else if (typeof value === 'boolean') o.tty = value
        else throw configError('option `tty` must be a boolean or [rows, cols]')
        break
      case 'publish':
        if (!Array.isArray(value) || !value.every((p) => typeof p === 'string')) {
          throw configError("option `publish` must be an array of '[ADDR:]HOSTPORT:PORT[/udp]' strings")
        }
        o.publish = value
        break
      case 'egress':
        // Each rule a pair, or the shared word 'allow:CIDR[:PORTS]' that core parses.
        if (
          !Array.isArray(value) ||
          !value.every(
            (r) =>
              typeof r === 'string' ||
              (Array.isArray(r) && r.length === 2 && (r[0] === 'allow' || r[0] === 'deny') && typeof r[1] === 'string'),
          )
        ) {
          throw configError(
            "option `egress` must be an array of ['allow' | 'deny', 'CIDR[:PORTS]'] pairs or 'allow:CIDR[:PORTS]' strings",
          )
        }
        o.egress = value.map((r) => (typeof r === 'string' ? r : `${r[0]}:${r[1]}`))
        break
      case 'env':
        if (typeof value !== 'object' || value === null) throw configError('option `env` must be an object')
        o.env = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]))
        break
      default:
        o[key] = value
    }
  }
  return o
}

function args (argv) {
  if (!Array.isArray(argv)) throw new TypeError('argv must be an array of strings or Buffers')
  return argv.map((a) => (Buffer.isBuffer(a) ? a : String(a)))
}

function abortError (signal) {
  const e = new Error('The operation was aborted', { cause: signal.reason })
  e.name = 'AbortError'
  e.code = 'ABORT_ERR'
  return e
}

/** A sandbox started by `spawn`. Its limits hold whether or not anyone waits. */
class Running {
  constructor (handle, signal) {
    this._native = handle
    this._signal = signal
    this._outcome = null
    const [stdin, stdout, stderr] = handle.takeStreams()
    /** What the program reads (`stdin: 'pipe'`), a Writable; `end()` is end of file. */
    this.stdin = stdin >= 0 ? new net.Socket({ fd: stdin, readable: false, writable: true }) : null
    /** What the program writes (`stdout: 'pipe'`), as it comes. */
    this.stdout = stdout >= 0 ? new net.Socket({ fd: stdout, readable: true, writable: false }) : null
    this.stderr = stderr >= 0 ? new net.Socket({ fd: stderr, readable: true, writable: false }) : null
    if (signal) {
      this._onAbort = () => this.kill()
      if (signal.aborted) this.kill()
      else signal.addEventListener('abort', this._onAbort, { once: true })
    }
  }

  /** The host pid of the sandbox's init. */
  get pid () { return this._native.pid }

  /** This sandbox's id, unique in this process. */
  get id () { return this._native.id }

  /** The published ports, as `'127.0.0.1:8080->8000/tcp'` (host ports chosen for 0). */
  get ports () { return this._native.ports }

  /** The outcome, once the run has ended; rejects with an `AbortError` when the signal
   * given to `spawn` aborted it. */
  async wait () {
    if (this._outcome === null) {
      try {
        this._outcome = new Outcome(await this._native.wait())
      } catch (e) {
        throw rebuild(e)
      } finally {
        if (this._signal) this._signal.removeEventListener('abort', this._onAbort)
      }
    }
    if (this._signal && this._signal.aborted && this._outcome.status === 'cancelled') {
      throw abortError(this._signal)
    }
    return this._outcome
  }

  /** Stops the sandbox now; the run ends `'cancelled'`. */
  kill () { this._native.kill() }

  /** Sends `signal` (a number or a name such as 'SIGTERM') to the program. */
  signal (signal) {
    const n = typeof signal === 'string' ? require('node:os').constants.signals[signal] : signal
    if (typeof n !== 'number') throw configError(`unknown signal \`${signal}\``)
    call(() => this._native.signal(n))
  }

  /** Resizes the program's terminal (`tty: true`). */
  resize (rows, cols) { call(() => this._native.resize(rows, cols)) }
}

/** Starts `argv` in a new sandbox made from `image`, and returns at once. */
function spawn (image, argv, options = {}) {
  if (!(image instanceof Image)) throw new TypeError('image must be an isolette.Image')
  const signal = options.signal
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('option `signal` must be an AbortSignal')
  const normalized = normalize(options)
  if (signal && signal.aborted) throw abortError(signal)
  return new Running(call(() => native.spawn(image._native, args(argv), normalized)), signal)
}

/** Runs `argv` in a new sandbox made from `image`; resolves to its `Outcome` (a verdict
 * is a value, never a rejection). */
async function run (image, argv, options = {}) {
  const piped = ['stdin', 'stdout', 'stderr'].some((k) => options[k] === 'pipe')
  if (piped) return spawn(image, argv, options).wait()
  if (!(image instanceof Image)) throw new TypeError('image must be an isolette.Image')
  const signal = options.signal
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('option `signal` must be an AbortSignal')
  const normalized = normalize(options)
  if (signal && signal.aborted) throw abortError(signal)
  // Core's `run()` on a thread of the addon's own pool: no `Running` to make.
  const canceller = signal ? new native.Canceller() : undefined
  const pending = call(() => native.start(image._native, args(argv), normalized, canceller))
  const onAbort = () => canceller.cancel()
  if (signal) signal.addEventListener('abort', onAbort, { once: true })
  let outcome
  try {
    outcome = new Outcome(await pending)
  } catch (e) {
    throw rebuild(e)
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort)
  }
  if (signal && signal.aborted && outcome.status === 'cancelled') throw abortError(signal)
  return outcome
}

/** A reusable set of options for one image; `run` and `spawn` take overrides. */
class Sandbox {
  constructor (image, options = {}) {
    if (!(image instanceof Image)) throw new TypeError('image must be an isolette.Image')
    const normalized = normalize(options)
    call(() => native.checkOptions(image._native, normalized))
    this.image = image
    this.options = { ...options }
  }

  run (argv, overrides = {}) { return run(this.image, argv, { ...this.options, ...overrides }) }
  spawn (argv, overrides = {}) { return spawn(this.image, argv, { ...this.options, ...overrides }) }
}

/** Projects still up: at the process's exit they go down, so that no service or network
 * outlives the program that owned it. */
const LIVE = new Set()
process.on('exit', () => {
  for (const running of LIVE) {
    try { running._native.downNow() } catch {}
  }
})

/** A Compose project (`compose.yaml`): found, merged and interpolated as `docker compose`
 * does it, its services checked. */
class Project {
  constructor (handle) {
    this._native = handle
  }

  /** Reads a project: `files` (merged in order), else `compose.yaml` and its other names
   * in `dir` (default: the working directory) or above; the name from `projectName`,
   * `COMPOSE_PROJECT_NAME`, the file, the directory; variables from `environment`
   * (default: this process's) over `.env`. */
  static load ({ dir, files, projectName, environment, ...rest } = {}) {
    const unknown = Object.keys(rest)
    if (unknown.length) throw new TypeError(`unknown project option \`${unknown[0]}\``)
    return new Project(call(() => native.Project.load({
      dir: dir == null ? undefined : String(dir),
      files: files == null ? undefined : Array.from(files, String),
      projectName: projectName == null ? undefined : String(projectName),
      environment: environment == null ? undefined : Object.fromEntries(Object.entries(environment).map(([k, v]) => [k, String(v)])),
    })))
  }

  /** The project's name. */
  get name () { return this._native.name }
  /** The services, in start order. */
  get services () { return call(() => this._native.services) }
  /** What was read but not carried out (unknown keys, unset variables). */
  get warnings () { return this._native.warnings }
  /** The project as `docker compose config --format json` shows it. */
  config () { return JSON.parse(call(() => this._native.configJson())) }
  /** The project as `docker compose config` prints it: YAML. */
  toYaml () { return this._native.toYaml() }

  /** Brings the project up in this process: images from `store` (a `Store` or its
   * directory), built where asked for (`build`) or missing; networks in `networks` (a
   * directory; default `$ISOLETTE_NETWORKS` or `/run/isolette/networks`); only `services`
   * and their dependencies when given; with `wait`, until every service runs and is
   * healthy. `onProgress(line)` hears Compose's lines; `signal` (an `AbortSignal`) stops
   * what was started and rejects with an `AbortError`. Resolves to a `RunningProject`. */
  async up (options = {}) {
    const { store, networks, services, build, wait, onProgress, signal, ...rest } = options
    const unknown = Object.keys(rest)
    if (unknown.length) throw new TypeError(`unknown up option \`${unknown[0]}\``)
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('option `signal` must be an AbortSignal')
    if (signal && signal.aborted) throw abortError(signal)
    const dir = store instanceof Store ? store.path : store
    const job = call(() => this._native.upStart({
      store: dir == null ? undefined : String(dir),
      networks: networks == null ? undefined : String(networks),
      services: services == null ? undefined : Array.from(services, String),
      build: build == null ? undefined : Boolean(build),
      wait: wait == null ? undefined : Boolean(wait),
    }))
    const drain = () => {
      for (const line of job.lines()) if (onProgress) onProgress(line)
    }
    return new RunningProject(await follow(job, drain, signal))
  }
}

/** A project brought up in this process; `down()` (or the process's exit) stops its
 * services and removes the project's networks. */
class RunningProject {
  constructor (handle) {
    this._native = handle
    LIVE.add(this)
  }

  /** The project's name. */
  get name () { return this._native.name }

  /** Each service started, in start order: `{ service, name, state, health,
   * health_output, restarts, pid, ports, exit_code, status, error }` (core's fields). */
  ps () { return JSON.parse(this._native.psJson()) }

  /** Service `service`'s output so far, across restarts: `{ stdout, stderr }` Buffers. */
  logs (service) { return call(() => this._native.logs(String(service))) }

  /** Resolves once `service` has reached `condition`, in Compose's words:
   * `'service_healthy'` (the default), `'service_started'` or
   * `'service_completed_successfully'`; rejects (`ERR_ISOLETTE_CONFIG`, Compose's words)
   * when it cannot get there any more. */
  async wait (service, condition = 'service_healthy') {
    try {
      await this._native.wait(String(service), String(condition))
    } catch (e) {
      throw rebuild(e)
    }
  }

  /** Stops the services (dependents first), removes the project's networks, and with
   * `volumes` its named volumes. `ps()` and `logs()` still answer afterwards. */
  async down ({ volumes = false } = {}) {
    try {
      await this._native.down(Boolean(volumes))
    } catch (e) {
      throw rebuild(e)
    } finally {
      LIVE.delete(this)
    }
  }
}

/** Finishes removing this process's cgroups now (exit does it too). */
function cleanup () { native.cleanup() }

/**
 * Removes what callers that no longer run left behind (their cgroups, killing what is
 * still in them), as `isolette gc` does: a service calls it when it starts again after a
 * crash. Returns `{ removed, busy }`, directories.
 */
function gc () { return call(() => native.gc()) }

module.exports = { Image, Store, Outcome, Running, Sandbox, Project, RunningProject, IsoletteError, run, spawn, cleanup, gc, STATUSES, OPTIONS }
